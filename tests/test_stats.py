"""The bootstrap confidence interval every evaluation reports."""

import numpy as np

from lacy.stats import bootstrap_ci, pooled_proportion_ci, ratio_of_sums_resamples


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = (np.random.default_rng(1).random(200) < 0.3).astype(float)
    ci = bootstrap_ci(values, 500, seed=7)
    assert ci == bootstrap_ci(values, 500, seed=7)
    assert ci != bootstrap_ci(values, 500, seed=8)
    assert ci[0] < values.mean() < ci[1]


def test_bootstrap_ci_of_one_value_and_of_none():
    assert bootstrap_ci([0.4]) == [0.4, 0.4]
    assert bootstrap_ci([]) is None


def test_pooled_proportion_ci_resamples_within_each_set():
    ci = pooled_proportion_ci([(0, 100), (20, 100)], 2000, seed=0)
    assert ci == pooled_proportion_ci([(0, 100), (20, 100)], 2000, seed=0)
    assert 0.05 < ci[0] < 0.10 < ci[1] < 0.15  # pooled 10 %; the all-zero set adds no spread
    wide = pooled_proportion_ci([(10, 100)], 2000, seed=0)  # one set of 100 at 10 %: wider than 200 queries
    assert wide[1] - wide[0] > ci[1] - ci[0]
    assert pooled_proportion_ci([(0, 0)]) is None
    assert pooled_proportion_ci([(0, 50), (0, 50)]) == [0.0, 0.0]


def test_ratio_of_sums_resamples_are_paired_token_weighted_means():
    rng = np.random.default_rng(0)
    den = rng.integers(50, 100, (2, 30)).astype(float)
    num = den * rng.random((2, 30)) * 5
    resamples = ratio_of_sums_resamples(num, den, 400, seed=3)
    picks = np.random.default_rng(3).integers(0, 30, (400, 30))  # the same draws, summed by hand
    assert np.allclose(resamples, num[:, picks].sum(axis=2) / den[:, picks].sum(axis=2))
    same = ratio_of_sums_resamples(np.vstack([num[0], num[0]]), np.vstack([den[0], den[0]]), 400, seed=3)
    assert np.array_equal(same[0], same[1])  # rows share their resampled batches
