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
