"""The bootstrap confidence interval every evaluation reports, and the paired comparisons of the summary."""

import numpy as np
import pytest

from lacy.stats import (bootstrap_ci, crossed_bootstrap, normal_difference_ci, paired_difference, pooled_proportion_ci,
                        ratio_of_sums_resamples, resampled_interval)


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


def test_crossed_bootstrap_of_one_seed_is_the_scorers_entity_bootstrap():
    values = np.random.default_rng(2).random(40)
    point, resamples = crossed_bootstrap(values[None, None, :], 500, seed=7)
    assert point[0] == pytest.approx(values.mean())
    assert resampled_interval(resamples[0]) == pytest.approx(bootstrap_ci(values, 500, seed=7))


def test_crossed_bootstrap_leaves_units_without_a_value_out_of_the_mean():
    """An abstained biography (NaN) is left out of a model's mean, as lacy.factscore.summarise does."""
    values = np.array([[[0.2, np.nan, 0.6, np.nan]]])
    point, resamples = crossed_bootstrap(values, 300, seed=0)
    assert point[0] == pytest.approx(0.4)
    finite = resamples[0][np.isfinite(resamples[0])]
    draws = {round((0.2 * k + 0.6 * m) / (k + m), 6) for k in range(5) for m in range(5 - k) if k + m}
    assert set(np.round(finite, 6)) <= draws, "k draws of 0.2 and m of 0.6 over k + m, the NaN draws dropped"
    assert np.isnan(resamples[0]).sum() > 0, "a resample that draws no responding unit has no value"
    none = crossed_bootstrap(np.full((1, 1, 3), np.nan), 50)[0]
    assert np.isnan(none[0]) and resampled_interval(np.full(5, np.nan)) is None


def test_paired_difference_resamples_the_same_units_for_both_models():
    """Persons differ widely, and model a beats model b by 0.05 on every one: each model's own interval is wide
    and the two overlap, but the paired difference is 0.05 in every resample."""
    persons = np.linspace(0.1, 0.9, 30)
    values = np.stack([persons + 0.05, persons])[:, None, :]
    point, resamples = crossed_bootstrap(values, 400, seed=1)
    a, b = resampled_interval(resamples[0]), resampled_interval(resamples[1])
    assert a[0] < b[1], "the unpaired intervals overlap"
    value, interval = paired_difference(point, resamples, 0, 1)
    assert value == pytest.approx(0.05) and interval == pytest.approx([0.05, 0.05])


def test_crossed_bootstrap_resamples_within_strata_and_over_seeds():
    """Within strata (query sets): a set's share of the units is fixed, so a row that is 1 on one whole set and 0
    on the other has the same pooled mean in every resample. Several seeds: seeds are resampled too."""
    values = np.array([[[1.0] * 10 + [0.0] * 30]])
    strata = ["a"] * 10 + ["b"] * 30
    _, within = crossed_bootstrap(values, 200, seed=0, strata=strata)
    assert np.allclose(within, 0.25)
    _, pooled = crossed_bootstrap(values, 200, seed=0)
    assert pooled.std() > 0.01
    seeds = np.array([[np.full(20, 0.2), np.full(20, 0.6)]])  # two seeds, every person alike within a seed
    point, resamples = crossed_bootstrap(seeds, 400, seed=0)
    assert point[0] == pytest.approx(0.4)
    assert set(np.round(resamples[0], 6)) == {0.2, 0.4, 0.6}, "seed draws: both 0.2, one each, both 0.6"


def test_normal_difference_ci_adds_the_two_errors_in_quadrature():
    assert normal_difference_ci(0.5, 0.03, 0.4, 0.04) == pytest.approx([0.1 - 1.96 * 0.05, 0.1 + 1.96 * 0.05])
