"""Confidence intervals shared by every evaluation (FactScore §5.2, fact leakage §5.3)."""

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
    means = values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def pooled_proportion_ci(groups: Sequence[tuple[int, int]], n_resamples: int = 1000, seed: int = 0,
                         level: float = 0.95) -> list[float] | None:
    """Seeded percentile-bootstrap interval of a proportion pooled over groups, ``(successes, n)`` each
    (fact leakage over query sets: leaked / queries of all sets). Each group's 0/1 outcomes are resampled
    within the group, i.e. ``Binomial(n, successes / n)`` draws; ``None`` when the groups hold nothing."""
    total = sum(n for _, n in groups)
    if total == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = sum(rng.binomial(n, k / n, n_resamples) for k, n in groups if n) / total
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return [float(low), float(high)]
