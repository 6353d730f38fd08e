"""Confidence intervals shared by every evaluation (FactScore §5.2, fact leakage §5.3, validation losses §A.4.3)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> list[float] | None:
    """Seeded percentile-bootstrap interval of the mean of ``values`` (entities or queries resampled with
    replacement); ``None`` when there is nothing to resample."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    return percentile_interval(values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=1), level)


def pooled_proportion_ci(groups: Sequence[tuple[int, int]], n_resamples: int = 1000, seed: int = 0,
                         level: float = 0.95) -> list[float] | None:
    """Seeded percentile-bootstrap interval of a proportion pooled over groups, ``(successes, n)`` each
    (fact leakage over query sets: leaked / queries of all sets). Each group's 0/1 outcomes are resampled
    within the group, i.e. ``Binomial(n, successes / n)`` draws; ``None`` when the groups hold nothing."""
    total = sum(n for _, n in groups)
    if total == 0:
        return None
    rng = np.random.default_rng(seed)
    return percentile_interval(sum(rng.binomial(n, k / n, n_resamples) for k, n in groups if n) / total, level)


def ratio_of_sums_resamples(numerators: np.ndarray, denominators: np.ndarray, n_resamples: int = 1000,
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
