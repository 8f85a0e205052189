"""The report's arithmetic on known numbers: statistics across seeds, curves, best epoch, gap, verdicts."""

from __future__ import annotations

import math

import pytest

from jobs.report import labels
from jobs.report.collect import Run
from jobs.report.reduce import (
    best_epoch,
    combined,
    compare,
    curve,
    generalisation_gap,
    stat,
    t_critical,
    threshold,
    values_by_seed,
)
from jobs.spec import Claim

LOWER = Claim(variant="l1", metric="binary_crossentropy", lower_than="basic")
HIGHER = Claim(variant="overfit", metric="binary_crossentropy", higher_than="basic")


def test_stat_is_mean_and_sample_std():
    s = stat([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(5 / 3))  # n - 1 in the denominator
    assert s.n == 4


def test_stat_of_one_value_has_no_std_and_of_none_is_none():
    assert stat([0.7]) == stat([0.7]).__class__(0.7, None, 1)
    assert stat([]) is None


def test_a_nan_or_infinite_value_has_a_mean_but_no_spread_and_no_verdict_rests_on_it():
    assert stat([math.nan, 1.0]).std is None and math.isnan(stat([math.nan, 1.0]).mean)
    assert stat([math.inf, 1.0]) == stat([1.0]).__class__(math.inf, None, 2)
    runs = [Run("basic", s, f"{s}", "done", result={"test": {"loss": v}}) for s, v in enumerate([0.5, math.nan, 0.7])]
    assert values_by_seed(runs, "basic", "loss") == {0: 0.5, 2: 0.7}


def test_curve_averages_per_epoch_over_the_epochs_every_seed_has():
    histories = [{"val_loss": [1.0, 0.5, 0.4]}, {"val_loss": [3.0, 1.5]}, {"loss": [9.0]}]
    c = curve(histories, "val_loss")
    assert c.n == 2
    assert c.mean == (2.0, 1.0)
    assert c.std == pytest.approx((math.sqrt(2), math.sqrt(0.5)))


def test_curve_with_one_seed_has_zero_band_and_without_the_key_is_none():
    assert curve([{"accuracy": [0.5, 0.6]}], "accuracy").std == (0.0, 0.0)
    assert curve([{"accuracy": [0.5]}], "val_accuracy") is None


def test_best_epoch_follows_the_metric_direction_and_is_one_based():
    values = [0.9, 0.5, 0.45, 0.6, float("nan")]
    assert best_epoch(values, lower_is_better=True) == (3, 0.45)
    assert best_epoch(values, lower_is_better=False) == (1, 0.9)
    assert best_epoch([0.5, 0.4, 0.4], lower_is_better=True) == (2, 0.4)  # first of a tie
    assert best_epoch([float("nan")], lower_is_better=True) is None


def test_generalisation_gap_is_validation_minus_training_at_the_end():
    history = {"binary_crossentropy": [0.7, 0.5, 0.3], "val_binary_crossentropy": [0.7, 0.6, 0.65]}
    assert generalisation_gap(history, "binary_crossentropy") == pytest.approx(0.35)
    assert generalisation_gap({"accuracy": [0.9]}, "accuracy") is None


def test_a_consistent_lower_difference_is_confirmed():
    basic = {0: 0.63, 1: 0.64, 2: 0.62}
    l1 = {0: 0.57, 1: 0.59, 2: 0.56}
    v = compare(LOWER, l1, basic)
    assert v.verdict == "confirmed"
    assert v.values == pytest.approx((-0.06, -0.05, -0.06))
    assert v.mean == pytest.approx(-0.17 / 3)
    assert v.agree == 3
    assert v.t_toward_claim == pytest.approx(-v.mean / (v.std / math.sqrt(3)))
    assert v.t_critical == 2.920


def test_a_consistent_difference_the_other_way_is_refuted():
    v = compare(HIGHER, {0: 0.5, 1: 0.52, 2: 0.49}, {0: 0.7, 1: 0.71, 2: 0.69})
    assert v.verdict == "refuted"
    assert v.agree == 0
    assert v.t_toward_claim < -v.t_critical


def test_a_difference_within_the_noise_is_inconclusive():
    v = compare(LOWER, {0: 0.60, 1: 0.66, 2: 0.61}, {0: 0.62, 1: 0.62, 2: 0.62})
    assert v.verdict == "inconclusive"
    assert v.agree == 2
    assert "2 of 3" in v.reason


def test_one_seed_is_not_a_test_but_says_which_way_it_went():
    v = compare(LOWER, {0: 0.57}, {0: 0.63})
    assert v.verdict == "inconclusive"
    assert "one seed: not a test" in v.reason
    assert "the claimed way" in v.reason
    other = compare(LOWER, {0: 0.7}, {0: 0.63})
    assert "the other way" in other.reason


def test_only_seeds_where_both_variants_finished_are_paired():
    v = compare(LOWER, {0: 0.57, 1: 0.5}, {0: 0.63, 2: 0.6})
    assert v.seeds == (0,)
    assert compare(LOWER, {1: 0.5}, {2: 0.6}).reason == "no seed has both variants finished"


def test_identical_differences_have_no_noise():
    assert compare(LOWER, {0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.7}).verdict == "confirmed"
    assert compare(LOWER, {0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}).verdict == "inconclusive"


def test_t_critical_values_and_the_conservative_tail():
    assert t_critical(2) == 6.314
    assert t_critical(31) == 1.697
    assert t_critical(500) == 1.697


def test_thresholds_count_seeds_on_the_claimed_side():
    at_least = Claim(variant="develop", metric="accuracy", at_least=0.86)
    assert threshold(at_least, {0: 0.87, 1: 0.88}).verdict == "confirmed"
    assert threshold(at_least, {0: 0.85, 1: 0.84}).verdict == "refuted"
    split = threshold(at_least, {0: 0.87, 1: 0.85})
    assert (split.verdict, split.agree) == ("inconclusive", 1)
    assert threshold(at_least, {0: 0.86}).verdict == "confirmed"  # the bound itself counts
    assert threshold(at_least, {0: 0.9}).reason == "met by 1 of 1 seed (value 0.9000)"
    assert threshold(at_least, {0: 0.87, 1: 0.85}).reason.startswith("met by 1 of 2 seeds (value ")
    assert threshold(at_least, {}).verdict == "inconclusive"
    at_most = Claim(variant="basic", metric="loss", at_most=0.5)
    assert threshold(at_most, {0: 0.4, 1: 0.5}).verdict == "confirmed"


def test_an_experiment_verdict_needs_every_claim():
    v = compare(LOWER, {0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.7})
    refuted = compare(HIGHER, {0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.7})
    one = compare(LOWER, {0: 0.5}, {0: 0.6})
    assert combined([v, v]) == "confirmed"
    assert combined([v, one]) == "inconclusive"
    assert combined([v, one, refuted]) == "refuted"
    assert combined([]) == "no claim"


def test_labels_name_metrics_and_their_direction():
    assert (
        labels.describe("accuracy") == "accuracy (fraction of examples classified correctly, 0 to 1; higher is better)"
    )
    assert labels.describe("sparse_categorical_crossentropy").endswith("lower is better)")
    note = labels.seed_note("sparse_categorical_crossentropy", "accuracy")
    assert note == 'the course printed this categorical cross-entropy under the label "accuracy"'
    assert labels.seed_note("binary_crossentropy", None) == ""


def test_numbers_show_four_significant_digits_and_the_std_lines_up():
    assert labels.num(0.63219) == "0.6322"
    assert labels.num(3.8213732) == "3.821"
    assert labels.num(None) == "-"
    assert labels.pm(0.4283, 0.01) == "0.4283 ± 0.0100"
    assert labels.pm(0.07019, 1e-17) == "0.07019 ± 0.00000"
    assert labels.pm(0.5, None) == "0.5000"
