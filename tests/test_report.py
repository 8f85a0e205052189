"""write_report on fixture stores: every output written, broken entries listed instead of crashing."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT
from report_fixtures import curves, fail, finish, fixture_id, golden_store, imdb_experiment, plan, suite_store

from jobs.cli import main
from jobs.report import build, labels, write_report
from jobs.report.collect import ExperimentRuns, Run
from jobs.report.document import variant_table
from jobs.report.reduce import summarise_experiment
from jobs.store import Store

OUTPUTS = {"index.html", "summary.md", "summary.csv", "claims.csv", "summary.json"}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    store = golden_store(root / "results")
    return store, write_report(store, root / "report")


def test_writes_every_output_and_a_figure_per_experiment(golden):
    _, paths = golden
    assert set(paths) == OUTPUTS | {"figures/reg.png", "figures/one.png"}
    for path in paths.values():
        assert Path(path).stat().st_size > 0
    assert Path(paths["figures/reg.png"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(Path(paths["index.html"]).parent.rglob(".tmp-*")), "a temporary file was left behind"


def test_a_figure_draws_each_variant_s_curves_in_its_colour(golden):
    """Counted in pixels: each variant's two curves in its colour (about 1 100 pixels each here); a figure
    with only its axes and legend would hold a few dozen (the legend's samples)."""
    from matplotlib.image import imread

    from jobs.report.figures import COLOURS

    _, paths = golden
    pixels = (imread(paths["figures/reg.png"])[..., :3] * 255).round()
    for colour in COLOURS[:2]:  # reg's two variants
        rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        assert (abs(pixels - rgb).max(axis=-1) <= 8).sum() > 400, colour


def test_html_is_one_self_contained_file(golden):
    _, paths = golden
    page = Path(paths["index.html"]).read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 2
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page refers to something online"
    assert "<script" not in page and "<link" not in page


def test_synthetic_data_and_capped_epochs_are_banners_at_the_top(golden):
    _, paths = golden
    md = Path(paths["summary.md"]).read_text()
    first_section = md.split("## Overview")[0]
    assert "**SYNTHETIC DATA.**" in first_section
    assert "**EPOCHS CAPPED.**" in first_section and "reg/penalty: 4 of 6 epochs" in first_section
    page = Path(paths["index.html"]).read_text()
    assert page.index('class="banner"') < page.index("Overview")
    # and beside each verdict they qualify, wherever it is read
    overview = md.split("## Overview")[1].split("**How verdicts")[0]
    assert "**confirmed** (epochs capped) |" in overview
    claims = list(csv.DictReader(io.StringIO(Path(paths["claims.csv"]).read_text())))
    assert {(row["synthetic"], row["epochs_capped"]) for row in claims} == {("True", "True")}


def test_real_full_length_claims_are_flagged_neither_synthetic_nor_capped(tmp_path):
    paths = write_report(suite_store(tmp_path / "results", seeds=2, synthetic=False), tmp_path / "out")
    claims = list(csv.DictReader(io.StringIO(Path(paths["claims.csv"]).read_text())))
    assert len(claims) == 6 and {(row["synthetic"], row["epochs_capped"]) for row in claims} == {("False", "False")}
    assert "(epochs capped)" not in Path(paths["summary.md"]).read_text()


@pytest.mark.parametrize(("asks", "capped"), [(6, True), (2, False)])
def test_capped_follows_each_experiments_own_epochs_for_a_job_another_trained(tmp_path, asks, capped):
    """A job shared by two experiments counts as capped for the one that asks more epochs than it ran."""
    store = Store(str(tmp_path))
    experiment = imdb_experiment("mine", {"basic": {}}, [])
    experiment = experiment.model_copy(update={"training": experiment.training.model_copy(update={"epochs": asks})})
    ids = plan(store, experiment, seeds=1)
    other_spec_asked = 6 if asks == 2 else 2  # the job was trained for another experiment first
    history = curves(experiment.training.metrics, 2, 0.7, 0.01, 0.0)
    finish(store, ids["basic", 0], history, epochs=2, requested_epochs=other_spec_asked)
    report = build(store)[0]
    assert report.capped == (("mine/basic: 2 of 6 epochs",) if capped else ())
    assert report.experiments[0].variants[0].capped is capped


def test_a_study_without_the_courses_numbers_does_not_mention_the_course(tmp_path):
    store = Store(str(tmp_path))
    experiment = imdb_experiment("mine", {"basic": {}, "other": {}}, [])
    ids = plan(store, experiment, seeds=1)
    for variant in ("basic", "other"):
        finish(store, ids[variant, 0], curves(experiment.training.metrics, 6, 0.7, 0.01, 0.0))
    text = Path(write_report(store, tmp_path / "out")["summary.md"]).read_text()
    assert "course" not in text and "seed's" not in text


def test_markup_in_a_specs_words_shows_as_written_in_both_documents(tmp_path):
    """Rendered as CommonMark (markdown-it, as rich uses), summary.md has none of the spec's markup as
    HTML: not raw, not inside what looks like a code span, not as a link."""
    from markdown_it import MarkdownIt

    store = Store(str(tmp_path))
    experiment = imdb_experiment("mine", {"basic": {}}, [])
    words = {
        "title": "Width <b>vs</b> depth",
        "question": "Is <script>x()</script> safe when t < 2, \\`<img src=x onerror=y()>` or [here](javascript:z())?",
    }
    experiment = experiment.model_copy(update=words)
    finish(store, plan(store, experiment, seeds=1)["basic", 0], curves(experiment.training.metrics, 6, 0.7, 0.01, 0.0))
    paths = write_report(store, tmp_path / "out")
    rendered = MarkdownIt("commonmark").render(Path(paths["summary.md"]).read_text())
    for markup in ("<b>", "<script", "<img src=x", 'href="javascript'):
        assert markup not in rendered, markup
    assert "Width &lt;b&gt;vs&lt;/b&gt; depth" in rendered and "safe when t &lt; 2" in rendered
    assert '<a href="#mine-' in rendered  # the document's own link to the experiment still works
    page = Path(paths["index.html"]).read_text()
    assert "Width &lt;b&gt;vs&lt;/b&gt; depth" in page and "<script" not in page and "<img src=x" not in page


def test_a_resumed_jobs_training_time_counts_every_attempt(tmp_path):
    store = Store(str(tmp_path))
    experiment = imdb_experiment("mine", {"basic": {}}, [])
    job_id = plan(store, experiment, seeds=1)["basic", 0]
    finish(store, job_id, curves(experiment.training.metrics, 6, 0.7, 0.01, 0.0), seconds=2.0)
    result = store.job(job_id).result()
    result["timings"]["training_s"] = 5.0  # 2 s in this attempt, 3 s in the one it resumed from
    store.write_json(store.job(job_id).file("result.json"), result)
    (variant,) = build(store)[0].experiments[0].variants
    assert variant.training_s.mean == 5.0
    del result["timings"]["training_s"]  # as results stored before it was recorded
    store.write_json(store.job(job_id).file("result.json"), result)
    (variant,) = build(store)[0].experiments[0].variants
    assert variant.training_s.mean == 2.0


def test_real_uncapped_data_has_no_banner(tmp_path):
    md = Path(write_report(suite_store(tmp_path / "results", seeds=1, synthetic=False), tmp_path / "out")["summary.md"])
    text = md.read_text()
    assert "SYNTHETIC" not in text and "CAPPED" not in text and "REDUCED PRECISION" not in text
    assert "one seed: not a test" in text
    assert "- Precision: float32" in text


def test_reduced_precision_is_a_banner_and_named_in_the_run_section(tmp_path):
    store = suite_store(tmp_path / "results", seeds=1, synthetic=False, precision="mixed_bfloat16")
    text = Path(write_report(store, tmp_path / "out")["summary.md"]).read_text()
    first_section, rest = text.split("## Overview")
    assert "**REDUCED PRECISION.** Some jobs computed their layers in mixed_bfloat16" in first_section
    assert "- Precision: mixed_bfloat16" in rest.split("## Run")[1].split("\n## ")[0]


def test_failed_running_and_missing_jobs_are_listed_with_the_logs_they_have(golden):
    store, paths = golden
    md = Path(paths["summary.md"]).read_text()
    problems = md.split("## Failed or missing jobs")[1].split("\n## ")[0]
    for state, use in (("failed", "one/wide/s1"), ("running", "one/basic/s1"), ("missing", "one/deep/s1")):
        row = next(line for line in problems.splitlines() if use in line)
        assert f"**{state}**" in row
        job_id = re.search(r"`([0-9a-f]{16})`", row).group(1)
        has_log = state == "failed"  # a job that never ended wrote none
        assert (store.job(job_id).log_uri in row) is has_log and row.endswith(" - |") is not has_log, row
    assert "Diverged: diverged at epoch 3" in problems


def test_a_job_shared_by_two_experiments_is_listed_once_and_counted_in_both(golden):
    _, paths = golden
    summary = json.loads(Path(paths["summary.json"]).read_text())
    by_name = {e["name"]: e for e in summary["experiments"]}
    assert by_name["reg"]["variants"][0]["seeds_done"] == 3
    assert by_name["one"]["variants"][0]["seeds_done"] == 1  # s0 is reg's basic s0


def test_an_unfinished_job_shared_by_two_experiments_is_one_problem_naming_both_uses(tmp_path):
    store = Store(str(tmp_path / "results"))
    ids = plan(store, imdb_experiment("first", {"basic": {}}, []), seeds=1)
    plan(store, imdb_experiment("second", {"basic": {}}, []), seeds=1, ids=ids)  # the same job
    fail(store, ids["basic", 0], "Diverged: diverged at epoch 2: loss is nan")
    summary = json.loads(Path(write_report(store, tmp_path / "out")["summary.json"]).read_text())
    assert [(p["job_id"], p["state"], p["uses"]) for p in summary["problems"]] == [
        (ids["basic", 0], "failed", ["first/basic/s0", "second/basic/s0"])
    ]


def test_verdicts_of_each_kind_reach_the_summary(golden):
    _, paths = golden
    summary = json.loads(Path(paths["summary.json"]).read_text())
    verdicts = {v["claim"]: v for e in summary["experiments"] for v in e["verdicts"]}
    assert verdicts["`penalty` has lower test binary cross-entropy than `basic`"]["verdict"] == "confirmed"
    one_seed = verdicts["`wide` has lower test binary cross-entropy than `basic`"]
    assert one_seed["verdict"] == "inconclusive" and one_seed["reason"].startswith("one seed: not a test")
    # seed 1 of `basic` is still running, of `deep` never started: the one finished seed decides nothing
    met = verdicts["`basic` reaches test accuracy ≥ 0.6"]
    assert met["verdict"] == "inconclusive" and met["reason"].startswith("one seed: not a test; that seed met it")
    assert met["missing"] == ["`basic` seed 1 (running)"] and met["planned"] == 2
    missed = verdicts["`deep` keeps test binary cross-entropy ≤ 0.5"]
    assert missed["verdict"] == "inconclusive" and "that seed missed it" in missed["reason"]
    assert missed["missing"] == ["`deep` seed 1 (never started)"]
    assert one_seed["missing"][0] == "`wide` seed 1 (failed: Diverged: diverged at epoch 3: loss is nan)"
    assert summary["rule"] in Path(paths["summary.md"]).read_text()


def test_csv_has_a_row_per_variant_with_numbers(golden):
    _, paths = golden
    rows = list(csv.DictReader(io.StringIO(Path(paths["summary.csv"]).read_text())))
    assert [(r["experiment"], r["variant"]) for r in rows] == [
        ("one", "basic"),
        ("one", "wide"),
        ("one", "deep"),
        ("reg", "basic"),
        ("reg", "penalty"),
    ]
    penalty = rows[-1]
    assert float(penalty["test_binary_crossentropy_mean"]) < float(rows[-2]["test_binary_crossentropy_mean"])
    assert penalty["seed_printed_binary_crossentropy"] == "0.575"
    assert penalty["test_sparse_categorical_crossentropy_mean"] == ""
    assert penalty["experiment_verdict"] == "confirmed"


def test_claims_csv_has_each_claims_verdict_and_paired_numbers(golden):
    _, paths = golden
    rows = {r["claim"]: r for r in csv.DictReader(io.StringIO(Path(paths["claims.csv"]).read_text()))}
    assert len(rows) == 4
    penalty = rows["`penalty` has lower test binary cross-entropy than `basic`"]
    assert (penalty["experiment"], penalty["kind"], penalty["verdict"]) == ("reg", "comparison", "confirmed")
    assert (penalty["seeds"], penalty["seeds_the_claimed_way"]) == ("3", "3")
    assert float(penalty["mean"]) < 0 and float(penalty["t_toward_claim"]) >= float(penalty["t_critical"]) > 0
    differences = [float(d) for d in penalty["per_seed"].split()]
    assert len(differences) == 3 and sum(differences) / 3 == pytest.approx(float(penalty["mean"]))
    low, high = float(penalty["interval_90_low"]), float(penalty["interval_90_high"])
    assert low < float(penalty["mean"]) < high < 0 and penalty["seeds_planned"] == "3"
    one_seed = rows["`wide` has lower test binary cross-entropy than `basic`"]
    assert one_seed["verdict"] == "inconclusive" and one_seed["t_toward_claim"] == one_seed["std"] == ""


def test_the_answer_says_how_big_the_paired_difference_is_and_if_it_is_more_than_noise(golden):
    report, _ = build(golden[0])
    reg = next(s for s in report.experiments if s.name == "reg")
    verdict = reg.verdicts[0]
    low, high = (-bound for bound in reversed(verdict.interval))
    size = f"lower by {labels.num(-verdict.mean)} on average (90% confidence interval {labels.num(low)} to "
    assert size + f"{labels.num(high)}; std across seeds {labels.num(verdict.std)})" in reg.answer
    assert "the claimed way in 3 of 3 seeds: more than noise (t = " in reg.answer


def test_synthetic_experiments_beside_real_ones_are_named_in_the_banner_and_marked_in_the_overview(tmp_path):
    store = suite_store(tmp_path / "results", seeds=1, synthetic=False)
    synthetic = suite_store(tmp_path / "synthetic", seeds=1, synthetic=True)
    shutil.copytree(tmp_path / "synthetic" / "jobs", tmp_path / "results" / "jobs", dirs_exist_ok=True)
    for name in ("l1", "l2"):  # two experiments of a synthetic run next to the real ones
        store.write_experiment(name, synthetic.read_experiment(name))
    md = Path(write_report(store, tmp_path / "out")["summary.md"]).read_text()
    banner = next(line for line in md.splitlines() if "**SYNTHETIC DATA.**" in line)
    assert "2 of the 6 experiments here come from generated data" in banner and ": l1, l2." in banner
    overview = md.split("## Overview")[1].split("## Run")[0]
    marked = [line for line in overview.splitlines() if "SYNTHETIC data" in line]
    assert len(marked) == 2 and all("[L1" in line or "[L2" in line for line in marked), marked


def test_seed_numbers_are_shown_beside_ours_with_a_note_where_the_seed_mislabelled_them(tmp_path):
    paths = write_report(suite_store(tmp_path / "results", seeds=2), tmp_path / "out")
    md = Path(paths["summary.md"]).read_text()
    assert "(the course printed 3.821 vs 0.748)" in md
    assert 'the course printed this categorical cross-entropy under the label "accuracy"' in md
    assert "test accuracy ↑" in md and "test categorical cross-entropy ↓" in md


def test_an_experiment_without_claims_whose_headline_metric_is_not_finite_still_reports(tmp_path):
    store = Store(str(tmp_path))
    experiment = imdb_experiment("noclaim", {"basic": {}}, [], seeds=1)
    ids = plan(store, experiment, seeds=1)
    history = curves(experiment.training.metrics, 3, 0.7, 0.01, 0.0)
    history["val_binary_crossentropy"][-1] = float("nan")  # the headline metric's test value
    finish(store, ids["basic", 0], history)
    (summary,) = build(store)[0].experiments
    assert summary.answer == "`basic` test binary cross-entropy not finite"
    write_report(store, tmp_path / "report")
    assert (tmp_path / "report" / "index.html").is_file()


def test_a_job_stopped_before_its_first_epoch_is_not_said_to_resume(tmp_path):
    store = Store(str(tmp_path))
    experiment = imdb_experiment("stopped", {"basic": {}}, [], seeds=1)
    ids = plan(store, experiment, seeds=1)
    record = store.job(ids["basic", 0])
    record.start({})
    record.interrupt()  # Ctrl-C while the job waited for a worker
    (problem,) = build(store)[0].problems
    assert problem.state == "interrupted" and problem.error.startswith("stopped before any epoch was stored")
    assert problem.error.endswith("; the next run starts it")


def test_corrupt_entries_are_listed_not_fatal(tmp_path):
    store = Store(str(tmp_path / "results"))
    experiment = imdb_experiment(
        "bad", {"basic": {}, "other": {}}, [{"variant": "other", "metric": "loss", "lower_than": "basic"}]
    )
    ids = plan(store, experiment, seeds=2)
    history = curves(experiment.training.metrics, 3, 0.6, 0.0, 0.0)
    finish(store, ids["basic", 0], history)
    finish(store, ids["basic", 1], history)
    store.write_bytes(store.job(ids["basic", 1]).file("result.json"), b"{not json")
    finish(store, ids["other", 0], history)
    store.write_bytes(store.job(ids["other", 0]).file("status.json"), b"\x00\xff")
    finish(store, ids["other", 1], history)
    store.write_bytes(store.job(ids["other", 1]).file("history.json"), b"[1, 2")
    store.write_bytes(store.experiment_path("broken"), b"{")
    store.write_experiment("invalid", {"experiment": {"name": "invalid"}, "jobs": []})
    store.write_experiment("listed", [experiment.model_dump(mode="json")])
    valid = {"experiment": experiment.model_dump(mode="json"), "jobs": []}
    store.write_experiment("unordered", {**valid, "order": None})
    store.write_experiment("optionless", {**valid, "run": [1]})
    store.write_experiment("textcap", {**valid, "run": {"max_epochs": "3", "synthetic": False}})
    store.write_experiment("noteless", {**valid, "report_notes": [""]})
    store.write_experiment(
        "badid",
        {"experiment": experiment.model_dump(mode="json"), "jobs": [{"variant": "basic", "seed": 0, "job_id": "../x"}]},
    )

    report, _ = build(store)
    states = {(p.uses[0], p.state) for p in report.problems}
    assert ("bad/basic/s1", "corrupt") in states
    assert ("bad/other/s0", "corrupt") in states
    assert ("bad/other/s1", "corrupt") in states
    assert ("broken (manifest)", "corrupt") in states
    assert ("invalid (manifest)", "corrupt") in states
    assert {("listed (manifest)", "corrupt"), ("unordered (manifest)", "corrupt")} <= states
    assert ("optionless (manifest)", "corrupt") in states
    textcap = next(p.error for p in report.problems if p.uses[0] == "textcap (manifest)")
    assert textcap == "manifest's run.max_epochs: Input should be a valid integer"
    assert "noteless (manifest)" not in {p.uses[0] for p in report.problems}
    assert ("badid/basic/s0", "corrupt") in states
    detail = next(p.error for p in report.problems if p.uses[0] == "bad/basic/s1")
    assert "result.json: not valid JSON" in detail
    paths = write_report(store, tmp_path / "out")
    md = Path(paths["summary.md"]).read_text()
    assert "**Manifest unreadable**" in md
    assert "No result yet for `other`." in md


def test_an_empty_store_still_renders(tmp_path):
    paths = write_report(Store(str(tmp_path / "nothing")), tmp_path / "out")
    assert set(paths) == OUTPUTS
    assert "None: every planned job finished." in Path(paths["summary.md"]).read_text()


def test_a_planned_experiment_without_results_renders_without_figures(tmp_path):
    store = Store(str(tmp_path / "results"))
    plan(store, imdb_experiment("fresh", {"basic": {}}, []), seeds=1)
    paths = write_report(store, tmp_path / "out")
    assert "figures/fresh.png" not in paths
    md = Path(paths["summary.md"]).read_text()
    assert "No results yet." in md and "**missing**" in md and fixture_id("fresh", "basic", 0) in md


def test_a_fresh_process_reports_the_suite_without_tensorflow_or_ray(tmp_path):
    """The report is a pure reduction: no TensorFlow, no Ray (its speed is timed by benchmarks/targets.py)."""
    suite_store(tmp_path / "results", seeds=3)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from jobs.report import write_report
        from jobs.store import Store
        paths = write_report(Store({str(tmp_path / "results")!r}), Path({str(tmp_path / "out")!r}))
        assert "tensorflow" not in sys.modules and "ray" not in sys.modules, "the report imported TF or Ray"
        print(len(paths))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) == len(OUTPUTS) + 6  # and a figure per experiment


def test_results_stored_before_precision_was_recorded_count_as_float32(tmp_path):
    store = suite_store(tmp_path / "results", seeds=1, synthetic=False, precision="mixed_bfloat16")
    record = store.job(store.job_ids()[0])
    result = record.result()
    del result["environment"]["precision"]
    store.write_json(record.file("result.json"), result)
    text = Path(write_report(store, tmp_path / "out")["summary.md"]).read_text()
    assert "- Precision: float32, mixed_bfloat16" in text


def test_a_buckets_report_renders_here_and_the_bucket_is_only_read(tmp_path, monkeypatch, bucket):
    """`regimen report --results s3://...` (here fsspec's memory://) writes ./report, not into the bucket."""
    golden_store(bucket.uri)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--results", bucket.uri]) == 0
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "summary.md").is_file()
    assert not bucket.fs.exists(bucket.path("report"))


def test_the_run_section_names_hardware_not_the_worker_processes(tmp_path):
    store = suite_store(tmp_path / "results", seeds=1, synthetic=False)
    record = store.job(store.job_ids()[0])
    result = record.result()
    result["environment"] |= {"pid": 4242, "jobs_in_process": 3}
    store.write_json(record.file("result.json"), result)
    report, _ = build(store)
    assert report.run.environment["pid"] == ("4242",)  # still in summary.json
    md = Path(write_report(store, tmp_path / "out")["summary.md"]).read_text()
    hardware = next(line for line in md.splitlines() if line.startswith("- Hardware: "))
    assert "device: CPU" in hardware and "pid" not in hardware and "jobs_in_process" not in hardware


def test_a_test_metric_missing_for_some_finished_seed_shows_how_many_it_is_over():
    experiment = imdb_experiment("reg", {"basic": {}}, [], seeds=3)
    losses = (0.5, float("nan"), 0.7)
    runs = tuple(
        Run("basic", seed, f"basic{seed}", "done", result={"test": {"loss": loss, "accuracy": 0.7}})
        for seed, loss in enumerate(losses)
    )
    (row,) = variant_table(summarise_experiment(ExperimentRuns("reg", experiment, runs=runs))).rows
    assert "0.6000 ± 0.1414 (n = 2)" in row and "0.7000 ± 0.0000" in row  # accuracy: all three seeds


def test_a_run_into_a_bucket_leaves_its_report_in_the_bucket(in_root, capsys):
    """`regimen run --results s3://...` on a cluster (here fsspec's memory://): the report lands beside
    the results, where whoever reads the bucket finds it."""
    uri = "memory://regimen-run-report-test/results"
    store = Store(uri)
    try:
        run = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--in-process", "--results", uri]
        assert main(run) == 0
        assert f"report: {store.uri_of('report', 'index.html')}" in capsys.readouterr().out
        summary = store.fs.cat_file(store.path("report", "summary.md")).decode()
        assert "## dropout: Dropout" in summary and "One seed, not a test" in summary
        assert store.fs.exists(store.path("report", "figures", "dropout.png"))
        assert not store.fs.exists(store.path("run.lease"))  # held while the run ran, removed at its end
    finally:  # fsspec's memory filesystem lives as long as the test process
        store.fs.rm(store.root, recursive=True)


def test_a_one_epoch_curve_is_drawn_as_a_marker():
    """A line through one point draws nothing: a run at --max-epochs 1 had an empty figure."""
    from matplotlib.figure import Figure

    from jobs.report.figures import _draw
    from jobs.report.reduce import Curve

    axes = Figure().add_subplot()
    _draw(axes, Curve(mean=(0.5,), std=(0.1,), n=3), "#1f77b4", "-", "one epoch")
    _draw(axes, Curve(mean=(0.4, 0.3), std=(0.0, 0.0), n=1), "#ff7f0e", "-", "two epochs")
    (marked,) = axes.containers  # an errorbar: its marker, and its bar across the three seeds
    assert marked.get_label() == "one epoch" and marked.has_yerr
    assert marked.lines[0].get_marker() == "o" and list(marked.lines[0].get_xdata()) == [1]
    line = next(line for line in axes.get_lines() if line.get_label() == "two epochs")
    assert line.get_marker() == "None" and line.get_linestyle() == "-" and len(line.get_xdata()) == 2
