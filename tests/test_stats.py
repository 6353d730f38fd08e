"""The bootstrap confidence interval every evaluation reports."""

import numpy as np

from lacy.stats import bootstrap_ci


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = (np.random.default_rng(1).random(200) < 0.3).astype(float)
    ci = bootstrap_ci(values, 500, seed=7)
    assert ci == bootstrap_ci(values, 500, seed=7)
    assert ci != bootstrap_ci(values, 500, seed=8)
    assert ci[0] < values.mean() < ci[1]


def test_bootstrap_ci_of_one_value_and_of_none():
    assert bootstrap_ci([0.4]) == [0.4, 0.4]
    assert bootstrap_ci([]) is None
