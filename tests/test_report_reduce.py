"""The report's arithmetic on known numbers: statistics across seeds, curves, best epoch, gap, verdicts."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from report_fixtures import imdb_experiment
from scipy import stats

from jobs.report import labels
from jobs.report.collect import ExperimentRuns, Run
from jobs.report.reduce import (
    LEVEL,
    best_epoch,
    combined,
    compare,
    curve,
    generalisation_gap,
    incomplete,
    judge,
    many_claims,
    stat,
    summarise_experiment,
    summarise_variant,
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
    assert v.t_critical == pytest.approx(2.920, abs=5e-4)
    reference = stats.ttest_1samp(v.values, 0.0, alternative="less")  # scipy's own paired test, one-sided
    assert v.t_toward_claim == pytest.approx(-reference.statistic)
    assert v.p_toward_claim == pytest.approx(reference.pvalue)
    assert v.interval == pytest.approx(stats.ttest_1samp(v.values, 0.0).confidence_interval(1 - 2 * LEVEL))
    # mean -0.05667, std 0.005774, standard error 0.003333; t(0.95, 2 df) = 2.91999
    assert v.interval == pytest.approx((-0.05667 - 0.009733, -0.05667 + 0.009733), abs=1e-5)
    assert (v.a.mean, v.b.mean) == pytest.approx((0.57333, 0.63), abs=1e-5)


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


def test_the_same_difference_in_every_seed_is_no_evidence_of_anything():
    """No spread means no noise to test against (seeds that train alike), not infinite evidence."""
    same = compare(LOWER, {0: 0.5, 1: 0.6, 2: 0.55}, {0: 0.6, 1: 0.7, 2: 0.65})  # -0.1 each, up to rounding
    assert same.verdict == "inconclusive" and same.t_toward_claim is None
    assert same.reason.startswith("every seed gave the same difference, -0.1000: no seed-to-seed noise")
    identical = compare(LOWER, {0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert (identical.verdict, identical.t_toward_claim) == ("inconclusive", None)
    assert identical.reason.startswith("every seed gave the same difference, 0.0000: no seed-to-seed noise")


def test_no_difference_on_average_still_says_how_large_it_could_be():
    even = compare(LOWER, {0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.5})  # -0.1 and +0.1
    assert even.mean == 0 and even.interval == pytest.approx((-0.6314, 0.6314), abs=1e-4)
    experiment = imdb_experiment(
        "reg", {"basic": {}, "pen": {}}, [{"variant": "pen", "metric": "loss", "lower_than": "basic"}], seeds=2
    )
    values = {("basic", 0): 0.6, ("basic", 1): 0.5, ("pen", 0): 0.5, ("pen", 1): 0.6}
    runs = [Run(v, seed, f"{v}{seed}", "done", result={"test": {"loss": x}}) for (v, seed), x in values.items()]
    summary = summarise_experiment(ExperimentRuns("reg", experiment, runs=tuple(runs)))
    assert "no different on average (90% confidence interval of the difference -0.6314 to 0.6314;" in summary.answer


def test_t_critical_values_match_students_t_table_at_any_number_of_seeds():
    # one-sided 5% critical values of Student's t, from a printed table: df 1, 2, 10, 30, 100, 1000
    for seeds, table in ((2, 6.314), (3, 2.920), (11, 1.812), (31, 1.697), (101, 1.660), (1001, 1.646)):
        assert t_critical(seeds) == pytest.approx(table, abs=5e-4), seeds


@given(
    st.lists(
        st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
        min_size=2,
        max_size=8,
    ),
    st.booleans(),
)
def test_the_interval_lies_on_the_claimed_side_exactly_when_the_claim_is_confirmed(pairs, lower):
    claim = LOWER if lower else HIGHER
    v = compare(claim, {s: a for s, (a, _) in enumerate(pairs)}, {s: b for s, (_, b) in enumerate(pairs)})
    assume(v.t_toward_claim is not None and abs(abs(v.t_toward_claim) - v.t_critical) > 1e-6)
    low, high = v.interval
    claimed_side = high < 0 if lower else low > 0
    other_side = low > 0 if lower else high < 0
    assert (v.verdict == "confirmed") == claimed_side == (v.p_toward_claim <= LEVEL)
    assert (v.verdict == "refuted") == other_side == (v.p_toward_claim >= 1 - LEVEL)
    assert low <= v.mean <= high


def test_a_verdict_missing_planned_seeds_is_inconclusive_and_says_what_the_finished_ones_show():
    missing = ["`l1` seed 2 (failed: diverged at epoch 3: loss is nan)"]
    v = incomplete(compare(LOWER, {0: 0.57, 1: 0.59}, {0: 0.63, 1: 0.64, 2: 0.62}), missing, planned=3)
    assert v.verdict == "inconclusive" and v.t_toward_claim > v.t_critical  # the two finished seeds agree
    assert "the finished seeds alone would have it confirmed" in v.reason
    assert v.reason.endswith("; without 1 planned run: `l1` seed 2 (failed: diverged at epoch 3: loss is nan)")
    at_least = Claim(variant="develop", metric="accuracy", at_least=0.86)
    met = incomplete(threshold(at_least, {0: 0.87, 1: 0.88}), ["`develop` seed 2 (never started)"], planned=3)
    assert met.verdict == "inconclusive" and "would have it confirmed" in met.reason
    assert incomplete(threshold(at_least, {0: 0.87, 1: 0.88}), [], planned=2).verdict == "confirmed"


def test_judge_names_every_planned_run_without_a_value_and_why():
    def run(variant, seed, state, value=0.5, error=""):
        return Run(variant, seed, f"{variant}{seed}", state, error=error, result={"test": {"loss": value}})

    runs = [
        run("basic", 0, "done", 0.6),
        run("basic", 1, "done", math.nan),
        run("basic", 2, "done", 0.62),
        run("pen", 0, "done", 0.5),
        run("pen", 1, "done", 0.52),
        run("pen", 2, "failed", error="diverged at epoch 3: loss is nan\nTraceback ..."),
        run("pen", 3, "missing"),
        run("basic", 3, "running", error="attempt 1, 2 epochs stored"),
        Run("basic", 4, "basic4", "done", result={"test": {"accuracy": 0.7}}),  # stored without the metric
        run("pen", 4, "done", 0.5),
    ]
    v = judge(runs, Claim(variant="pen", metric="loss", lower_than="basic"))
    assert v.seeds == (0,) and v.planned == 5
    assert v.missing == (
        "`pen` seed 2 (failed: diverged at epoch 3: loss is nan)",
        "`pen` seed 3 (never started)",
        "`basic` seed 1 (test loss not finite)",
        "`basic` seed 3 (running)",
        "`basic` seed 4 (test loss not recorded)",
    )


def test_the_answer_gives_the_means_of_the_seeds_the_difference_is_of():
    """Means over every finished seed beside a difference over the paired ones would not agree."""
    experiment = imdb_experiment(
        "reg", {"basic": {}, "pen": {}}, [{"variant": "pen", "metric": "loss", "lower_than": "basic"}], seeds=3
    )
    values = {("basic", 0): 0.40, ("basic", 1): 0.41, ("pen", 0): 0.39, ("pen", 1): 0.395, ("pen", 2): 0.20}
    runs = [
        Run(variant, seed, f"{variant}{seed}", "done", result={"test": {"loss": value}})
        for (variant, seed), value in values.items()
    ] + [Run("basic", 2, "basic2", "failed", error="worker died")]
    summary = summarise_experiment(ExperimentRuns("reg", experiment, runs=tuple(runs)))
    assert summary.answer.startswith(
        "Inconclusive: `pen` test loss 0.3925 ± 0.0035 vs 0.4050 ± 0.0071 for `basic` (on 2 of 3 planned seeds; "
        "no result for `basic` seed 2 (failed: worker died)); paired per seed, lower by 0.01250 on average"
    )
    assert "0.3283" not in summary.answer  # pen's mean over all three of its seeds


def test_many_claims_at_once_say_how_often_one_comes_out_by_chance():
    tested = compare(LOWER, {0: 0.57, 1: 0.59}, {0: 0.63, 1: 0.64})
    one_seed = compare(LOWER, {0: 0.57}, {0: 0.63})
    assert many_claims([tested, one_seed]) == ""  # one test: nothing to add
    text = many_claims([tested] * 5 + [one_seed])
    assert "This report tests 5 comparison claims" in text and "with probability 41% (1 − 0.9^5" in text


def test_thresholds_count_seeds_on_the_claimed_side():
    at_least = Claim(variant="develop", metric="accuracy", at_least=0.86)
    assert threshold(at_least, {0: 0.87, 1: 0.88}).verdict == "confirmed"
    assert threshold(at_least, {0: 0.85, 1: 0.84}).verdict == "refuted"
    split = threshold(at_least, {0: 0.87, 1: 0.85})
    assert (split.verdict, split.agree) == ("inconclusive", 1)
    assert threshold(at_least, {0: 0.86, 1: 0.9}).verdict == "confirmed"  # the bound itself counts
    for value, went in ((0.9, "met"), (0.8, "missed")):  # one seed: which way it went, no verdict
        one = threshold(at_least, {0: value})
        assert (one.verdict, one.reason) == (
            "inconclusive",
            f"one seed: not a test; that seed {went} it (value {value:.4f})",
        )
    assert threshold(at_least, {0: 0.87, 1: 0.85}).reason.startswith("met by 1 of 2 seeds (value ")
    assert threshold(at_least, {}).verdict == "inconclusive"
    at_most = Claim(variant="basic", metric="loss", at_most=0.5)
    assert threshold(at_most, {0: 0.4, 1: 0.5}).verdict == "confirmed"


def test_an_experiment_verdict_needs_every_claim():
    v = compare(LOWER, {0: 0.5, 1: 0.61}, {0: 0.6, 1: 0.7})
    refuted = compare(HIGHER, {0: 0.5, 1: 0.61}, {0: 0.6, 1: 0.7})
    assert (v.verdict, refuted.verdict) == ("confirmed", "refuted")
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


def test_a_variant_not_yet_trained_shows_the_epochs_the_run_caps_it_to():
    experiment = imdb_experiment("reg", {"basic": {}}, [])  # 6 epochs
    running = [Run("basic", 0, "basic0", "running")]
    assert summarise_variant(experiment, running, "basic", max_epochs=2).epochs == 2
    assert summarise_variant(experiment, running, "basic").epochs == 6
