"""Confidence intervals shared by every evaluation (FactScore §5.2, fact leakage §5.3, validation losses §A.4.3),
and the paired comparisons the summary's verdicts read (:func:`crossed_bootstrap`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Bootstrap resamples of the intervals the figures and the summary compute from per-entity / per-query results.
RESAMPLES = 1000


def bootstrap_ci(values: Sequence[float], n_resamples: int = RESAMPLES, seed: int = 0,
                 level: float = 0.95) -> list[float] | None:
    """Seeded percentile-bootstrap interval of the mean of ``values`` (entities or queries resampled with
    replacement); ``None`` when there is nothing to resample."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    return percentile_interval(values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=1), level)


def pooled_proportion_ci(groups: Sequence[tuple[int, int]], n_resamples: int = RESAMPLES, seed: int = 0,
                         level: float = 0.95) -> list[float] | None:
    """Seeded percentile-bootstrap interval of a proportion pooled over groups, ``(successes, n)`` each
    (fact leakage over query sets: leaked / queries of all sets). Each group's 0/1 outcomes are resampled
    within the group, i.e. ``Binomial(n, successes / n)`` draws; ``None`` when the groups hold nothing."""
    total = sum(n for _, n in groups)
    if total == 0:
        return None
    rng = np.random.default_rng(seed)
    return percentile_interval(sum(rng.binomial(n, k / n, n_resamples) for k, n in groups if n) / total, level)


def ratio_of_sums_resamples(numerators: np.ndarray, denominators: np.ndarray, n_resamples: int = RESAMPLES,
                            seed: int = 0) -> np.ndarray:
    """Seeded bootstrap resamples of ratios of sums over batches (token-weighted mean losses), several at once:
    row k of ``numerators`` / ``denominators`` ([K, batches]) is one ratio, and every resample draws the same
    batches for all K, so that a difference of two rows (a model and the baseline on the same windows) is a
    paired resample. Returns [K, n_resamples]."""
    numerators, denominators = np.atleast_2d(numerators), np.atleast_2d(denominators)
    batches = numerators.shape[1]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, batches, (n_resamples, batches))
    # how often each resample draws each batch: memory n_resamples x batches, not K x n_resamples x batches
    weights = np.zeros((n_resamples, batches))
    np.add.at(weights, (np.arange(n_resamples)[:, None], picks), 1.0)
    return (numerators @ weights.T) / np.maximum(denominators @ weights.T, 1)


def percentile_interval(resamples: np.ndarray, level: float = 0.95) -> list[float]:
    """The percentile interval of bootstrap resamples."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(resamples, [tail, 100 - tail])
    return [float(low), float(high)]


# --- paired comparisons on shared units (entities, queries) and seeds --------------------------------

def crossed_bootstrap(values: np.ndarray, n_resamples: int = RESAMPLES, seed: int = 0,
                      strata: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates and seeded bootstrap resamples of K statistics measured on the same units and seeds.

    ``values`` is [K, S, U]: row k is one model (a method, the partner alone), S seeds, U shared units (the
    evaluation persons, the leakage queries); NaN marks a unit without a value (an abstained biography or one
    without a reference article: FactScore's mean runs over the responding entities only). A row's statistic is
    the mean over seeds of its per-seed mean over the units that have a value, which for one seed is the
    scorer's own ``score``.

    Scheme (crossed, not nested, because every seed's model writes about the same persons): each resample
    draws U units with replacement (within each stratum when ``strata`` labels them, e.g. the query set of a
    leakage query) and, with several seeds, S seeds with replacement; the same draws serve every row, so the
    difference of two rows is a paired resample (over the same persons or queries, and the same seed indices).
    With one seed, no strata and no NaN, a row's resamples are :func:`bootstrap_ci`'s for the same ``seed``.
    Returns (point [K], resamples [K, n_resamples]); a resample where a row has no unit with a value is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    k, s, u = values.shape
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_resamples, u))  # how often each resample draws each unit
    rows = np.arange(n_resamples)[:, None]
    if strata is None:
        groups = [np.arange(u)]
    else:
        labels = list(strata)
        groups = [np.flatnonzero([label == group for label in labels]) for group in dict.fromkeys(labels)]
    for units in groups:
        np.add.at(weights, (rows, units[rng.integers(0, units.size, (n_resamples, units.size))]), 1.0)
    seeds = rng.integers(0, s, (n_resamples, s)) if s > 1 else np.zeros((n_resamples, 1), dtype=int)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        point_per_seed = filled.sum(axis=2) / present.sum(axis=2)                  # [K, S]
        per_seed = (filled @ weights.T) / (present.astype(np.float64) @ weights.T)  # [K, S, B]
    chosen = per_seed[:, seeds, np.arange(n_resamples)[:, None]]                   # [K, B, S]
    return _nanmean(point_per_seed), _nanmean(chosen)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where every value is NaN (without numpy's warning)."""
    present = ~np.isnan(values)
    counts = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(present, values, 0.0).sum(axis=-1) / counts, np.nan)


def resampled_interval(resamples: np.ndarray, level: float = 0.95) -> list[float] | None:
    """:func:`percentile_interval` of the finite resamples; ``None`` when none is finite."""
    finite = np.asarray(resamples)[np.isfinite(resamples)]
    return percentile_interval(finite, level) if finite.size else None


def paired_difference(point: np.ndarray, resamples: np.ndarray, a: int, b: int,
                      level: float = 0.95) -> tuple[float, list[float]] | None:
    """Row ``a`` minus row ``b`` of :func:`crossed_bootstrap`'s output: the point difference and its paired
    percentile interval (the resamples of both rows share their draws); ``None`` when either has no value."""
    if not (np.isfinite(point[a]) and np.isfinite(point[b])):
        return None
    interval = resampled_interval(resamples[a] - resamples[b], level)
    return (float(point[a] - point[b]), interval) if interval else None


def normal_difference_ci(a: float, se_a: float, b: float, se_b: float, z: float = 1.96) -> list[float]:
    """Interval of ``a - b`` from two standard errors treated as independent: ``± z * sqrt(se_a² + se_b²)``.
    For accuracies on the same items this is conservative (their errors correlate positively)."""
    half = z * float(np.hypot(se_a, se_b))
    return [a - b - half, a - b + half]
