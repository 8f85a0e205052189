"""The CLI as a user meets it: exit codes, one line per problem, no tracebacks."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from helpers import ROOT, SPECS, another_run_holding, regimen

from jobs import data
from jobs.cli import main, storage_logs_in_one_line
from jobs.lease import BucketLease
from jobs.store import Store


def test_validate_prints_the_six_experiments(capsys, in_root):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    for name, params in [("overfitting", "706,369"), ("batchnorm", "382,026"), ("fashion", "284,234")]:
        assert name in out and params in out
    assert "6 experiments valid" in out and "notice" not in out  # specs/suite.yaml lists every file beside it


def test_validate_names_the_spec_files_a_folder_s_suite_leaves_out(capsys, tmp_path):
    (tmp_path / "suite.yaml").write_text("suite: mine\nexperiments: [l1.yaml]\n")
    for name in ("l1", "dropout"):
        (tmp_path / f"{name}.yaml").write_text((SPECS / f"{name}.yaml").read_text())
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    unlisted = tmp_path / "dropout.yaml"
    assert f"notice: {unlisted}: not listed in {tmp_path / 'suite.yaml'}, so not loaded" in out
    assert "1 experiment valid" in out and "l1.yaml: not listed" not in out


def test_plan_shows_ten_distinct_jobs(capsys, in_root, tmp_path):
    assert main(["plan", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "10 distinct jobs for 11 (experiment, variant, seed) uses" in out
    assert "l1, l2" in out  # the shared basic job
    assert out.count(" tensorflow ") == 10  # every job's backend
    assert out.count(" float32 ") == 10  # and precision


def test_plan_shows_a_finished_entry_that_cannot_be_read_as_corrupt(capsys, in_root, tmp_path):
    from jobs.loading import load_experiments
    from jobs.plan import expand
    from jobs.store import Store

    (loaded,), _ = load_experiments([SPECS / "batchnorm.yaml"])
    first, second = (job.id for job in expand([loaded.experiment]))
    for job_id in (first, second):
        record = Store(str(tmp_path)).job(job_id)
        record.start({})
        record.finish({"loss": [0.5]}, {"test": {"loss": 0.5}}, "")
    (tmp_path / "jobs" / first / "result.json").write_text('{"test": ')  # truncated
    assert main(["plan", "specs/batchnorm.yaml", "--results", str(tmp_path)]) == 0
    rows = {line.split()[-2]: line.split()[-1] for line in capsys.readouterr().out.splitlines() if "batchnorm" in line}
    assert rows == {first: "corrupt", second: "done"}


def test_plan_with_a_precision_override_plans_other_jobs(capsys, in_root, tmp_path):
    assert main(["plan", "--precision", "mixed_bfloat16", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(" mixed_bfloat16 ") == 10 and " float32 " not in out


def test_schema_is_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Experiment" and "variants" in schema["properties"]


BAD_INPUTS = {
    "unit: 256": (
        lambda d: d["variants"][0]["layers"].__setitem__(0, {"kind": "dense", "unit": 256}),
        "variants.0.layers.0.unit: unknown key 'unit' (did you mean 'units'?)",
    ),
    "rate 1.5": (
        lambda d: d["variants"][0]["layers"].__setitem__(0, {"kind": "dropout", "rate": 1.5}),
        "variants.0.layers.0.rate: Input should be less than 1",
    ),
    "rellu": (lambda d: d["variants"][0]["layers"][0].__setitem__("activation", "rellu"), "did you mean 'relu'?"),
    "softmax on imdb": (
        lambda d: d["variants"][0]["layers"].__setitem__(-1, {"kind": "dense", "units": 10, "activation": "softmax"}),
        "must be dense(1, sigmoid); got dense(10, softmax)",
    ),
    "claim on a missing variant": (lambda d: d["claims"][0].__setitem__("variant", "l3"), "no variant named 'l3'"),
    "backend pytorch": (
        lambda d: d.__setitem__("backend", "pytorch"),
        "backend: 'pytorch' is not allowed; expected one of: tensorflow, jax",
    ),
    "an emoji code in a name": (
        lambda d: d.__setitem__("name", "a:rocket:b"),
        "name: expected lowercase letters, digits, _ and -, starting with a letter or digit, at most 64 characters "
        "(got 'a:rocket:b')",  # rich would print a rocket for it
    ),
    "infinite cpus": (
        lambda d: d.__setitem__("resources", {"num_cpus": float("inf")}),
        "resources.num_cpus: Input should be a finite number (got inf)",
    ),
    "no variants": (lambda d: d.__setitem__("variants", []), "variants: expected at least 1 item, got 0"),
    "a loss claim across penalties": (
        lambda d: d["claims"][0].__setitem__("metric", "loss"),
        "claims.0.metric: 'loss' includes the L1/L2 penalty of 'l1', so the penalty could decide the claim; compare "
        "'binary_crossentropy'",
    ),
    "precision float16": (
        lambda d: d.__setitem__("precision", "float16"),
        "precision: 'float16' is not allowed (did you mean 'float32'?); expected one of: float32, mixed_bfloat16",
    ),
}


def bad_spec(tmp_path, case: str):
    edit, expected = BAD_INPUTS[case]
    document = yaml.safe_load((ROOT / "specs" / "l1.yaml").read_text())
    edit(document)
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(document))
    return spec, expected


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_specs_exit_2_with_one_line_and_no_traceback(tmp_path, capsys, case):
    spec, expected = bad_spec(tmp_path, case)
    for args in (["validate", str(spec)], ["run", str(spec), "--results", str(tmp_path / "r")]):
        assert main(args) == 2
        out, err = capsys.readouterr()
        assert out.splitlines()[0].startswith(f"{spec}: ") and expected in out.splitlines()[0]
        assert "Traceback" not in out + err
    assert not (tmp_path / "r").exists()  # nothing was run


def test_validate_says_which_specs_are_valid_beside_the_errors_of_the_others(tmp_path, capsys, in_root):
    spec, expected = bad_spec(tmp_path, next(iter(BAD_INPUTS)))
    assert main(["validate", "specs/l1.yaml", str(spec)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok  l1 ") and lines[1].startswith(f"{spec}: ") and expected in lines[1]
    assert lines[-1].endswith("; nothing was run")
    assert main(["plan", "specs/l1.yaml", str(spec)]) == 2  # plan and run still refuse the whole set
    assert not any(line.startswith("ok") for line in capsys.readouterr().out.splitlines())


def test_a_model_keras_refuses_is_not_called_valid(capsys, in_root, monkeypatch):
    import jobs.models

    build = jobs.models.build_model

    def refuse_dropout(dataset, layers, *args, **kwargs):
        if any(layer.kind == "dropout" for layer in layers):
            raise ValueError("no dropout today")
        return build(dataset, layers, *args, **kwargs)

    monkeypatch.setattr(jobs.models, "build_model", refuse_dropout)
    assert main(["validate", "specs/dropout.yaml", "specs/l1.yaml"]) == 2
    out = capsys.readouterr().out
    assert "specs/dropout.yaml: variants.1: Keras cannot build this model: no dropout today" in out
    assert "ok  dropout" not in out and "ok  l1" in out
    assert out.splitlines()[-1] == "1 model Keras cannot build"


def test_validate_ignores_the_keras_backend_the_environment_names():
    done = regimen("validate", "specs/l1.yaml", env={"KERAS_BACKEND": "torch"})  # torch is not installed
    assert done.returncode == 0 and "1 experiment valid" in done.stdout, done.stdout + done.stderr


def test_validate_builds_without_importing_tensorflow():
    """Most of what validate would take on TensorFlow is its import; Keras' numpy backend builds the same models."""
    script = (
        "import sys; from jobs.cli import main; code = main(['validate']); "
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "0 False True", done.stdout + done.stderr
    assert "overfitting  2 variants, 2 jobs, params: basic 58,881, overfit 706,369" in done.stdout


def test_a_bad_spec_exits_2_from_the_command_line_too(tmp_path):
    spec, expected = bad_spec(tmp_path, "unit: 256")
    done = regimen("run", str(spec), "--results", str(tmp_path / "r"))
    assert done.returncode == 2 and done.stdout.startswith(f"{spec}: ") and expected in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize(("text", "expected"), [("", "the file is empty"), ("a: [b\n", "not valid YAML")])
def test_files_that_are_not_specs_exit_2(tmp_path, text, expected):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    done = regimen("validate", str(spec))
    assert done.returncode == 2 and done.stdout.startswith(f"{spec}: ") and expected in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args", [["run", "--seeds", "0"], ["run", "--max-epochs", "x"], ["plan", "--precision", "float16"], ["frobnicate"]]
)
def test_bad_arguments_exit_2(args):
    done = regimen(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "error:" in done.stderr


def test_a_missing_dataset_stops_the_run_before_training(tmp_path, monkeypatch, capsys, in_root):
    import keras

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("REGIMEN_DATA_DIR", raising=False)
    results = tmp_path / "results"
    code = main(["run", "specs/l1.yaml", "specs/batchnorm.yaml", "--results", str(results), "--in-process"])
    out = capsys.readouterr().out
    assert code == 2
    assert "dataset 'imdb' not found" in out and "dataset 'mnist' not found" in out
    assert "--data-dir" in out and "make demo" in out and "nothing was trained" in out
    assert not (results / "jobs").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", "--results", "/nonexistent/results"], "no results at /nonexistent/results"),
        (["report", "--results", "tests"], "no results at tests (run `regimen run --results tests` first)"),
        (["run", "--synthetic", "--results", "/etc/hostname"], "results store /etc/hostname: not a folder"),
        (["plan", "--results", "nosuchprotocol://x"], "results store nosuchprotocol://x: ValueError"),
        (
            ["run", "--synthetic", "--num-gpus", "0.25"],
            "--num-gpus 0.25 for overfitting: --num-gpus 0.25 shares a GPU: give --gpu-memory-mb too",
        ),
        (["run", "--synthetic", "--num-cpus", "0.00001"], "--num-cpus 1e-05 for overfitting: finer than Ray's"),
        (["run", "--synthetic", "--results", "/proc/regimen"], "results store /proc/regimen: cannot write there"),
        (["run", "--synthetic", "--results", ""], "--results is empty: give a folder or a bucket"),
        (["plan", "--results", "."], "results store .: holds Regimen's source code; give a folder of its own"),
        (["plan", "--results", "README.md/x"], f"results store README.md/x: {ROOT / 'README.md'} is not a folder"),
    ],
)
def test_unusable_stores_and_resources_exit_2_in_one_line(args, expected):
    done = regimen(*args)
    assert done.returncode == 2 and done.stdout.startswith(expected), done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_run_its_options_refuse_writes_nothing(capsys, in_root, tmp_path):
    """Not even the lock: the options are checked before the store is held (the folder itself stays, made
    by the check that it can be written)."""
    results = tmp_path / "results"
    assert main(["run", "specs/dropout.yaml", "--synthetic", "--num-gpus", "2", "--results", str(results)]) == 2
    assert "--num-gpus 2 for dropout: a job trains on one GPU" in capsys.readouterr().out
    assert list(results.iterdir()) == []


def test_a_held_out_validation_split_is_counted_apart_from_the_training_examples(capsys, in_root, tmp_path):
    document = yaml.safe_load((SPECS / "dropout.yaml").read_text())
    document["training"]["validation"] = {"held_out": 0.2}
    document["variants"], document["claims"] = document["variants"][:1], []
    spec = tmp_path / "held.yaml"
    spec.write_text(yaml.safe_dump(document))
    results = tmp_path / "results"
    assert main(["run", str(spec), "--synthetic", "--max-epochs", "1", "--in-process", "--results", str(results)]) == 0
    (job,) = (results / "jobs").iterdir()
    data = json.loads((job / "result.json").read_text())["data"]
    assert (data["train"], data["held_out"], data["test"]) == (20_000, 5_000, 25_000)
    summary = (results / "report" / "summary.md").read_text()
    assert "20000 train + 5000 held out for validation / 25000 test examples" in summary


def test_workers_get_the_results_store_as_an_absolute_path(monkeypatch, in_root, tmp_path):
    """A worker resolves a relative path against its own working folder, which on a cluster is not the
    driver's: its epochs, checkpoints and claims would land elsewhere, and resuming would stop working."""
    from jobs.executors import InProcessExecutor

    given = []
    monkeypatch.setattr(InProcessExecutor, "run", lambda self, jobs, data, uri, progress: given.append(uri) or [])
    results = tmp_path / "results"
    monkeypatch.chdir(tmp_path)
    run = ["run", str(SPECS / "dropout.yaml"), "--synthetic", "--in-process", "--no-report", "--results", "results"]
    main(run)
    assert given == [str(results)]


def test_an_experiment_of_the_same_name_from_another_file_says_it_replaces_the_stored_one(capsys, in_root, tmp_path):
    mine = tmp_path / "mystudy" / "dropout.yaml"  # a user's own study, named as a built-in one
    mine.parent.mkdir()
    mine.write_text((SPECS / "dropout.yaml").read_text())
    results = tmp_path / "results"
    run = ["--synthetic", "--max-epochs", "1", "--in-process", "--no-report", "--results", str(results)]
    assert main(["run", "specs/dropout.yaml", *run]) == 0
    assert main(["run", str(SPECS / "dropout.yaml"), *run]) == 0
    assert "notice" not in capsys.readouterr().out  # the same file again, named from elsewhere
    assert main(["run", str(mine), *run]) == 0
    out = capsys.readouterr().out
    assert f"notice: dropout: planned from {mine}, which replaces in the report the experiment of the same name " in out
    assert f"planned from {SPECS / 'dropout.yaml'} (a store keys experiments by name: rename one to keep both)" in out


def test_a_run_that_leaves_finished_jobs_out_of_the_report_says_so(capsys, in_root, tmp_path):
    from report_fixtures import suite_store

    suite_store(tmp_path, seeds=3)  # every job of a finished `--seeds 3` run: nothing left to train
    run = ["run", "specs/batchnorm.yaml", "--synthetic", "--results", str(tmp_path), "--no-report"]
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "2 jobs: 0 trained, 2 already stored" in out, out
    left_out = (
        "notice: batchnorm: the report leaves out 4 finished jobs of the run before (they stay stored): `basic` "
        "seeds 1, 2 and `bn` seeds 1, 2, seeds this run does not plan (--seeds 3 reports them again)"
    )
    assert left_out in out, out
    assert main(run) == 0
    assert "notice" not in capsys.readouterr().out  # the same jobs as the run before
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    batchnorm = (tmp_path / "report" / "summary.md").read_text().split("## batchnorm")[1]
    assert f"**Left out.** T{left_out.removeprefix('notice: batchnorm: t')}." in batchnorm  # the report says so too
    assert main([*run, "--max-epochs", "1", "--in-process"]) == 0  # other settings: other jobs, no --seeds tip
    out = capsys.readouterr().out
    assert (
        "notice: batchnorm: the report leaves out 2 finished jobs of the run before (they stay stored): `basic` "
        "seed 0 and `bn` seed 0, whose settings this run's plan changed\n"
    ) in out, out
    spec = yaml.safe_load((SPECS / "batchnorm.yaml").read_text())
    spec["variants"], spec["claims"] = spec["variants"][:1], []  # `bn` taken out
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "one.yaml"), *run[2:], "--max-epochs", "1", "--in-process"]) == 0
    out = capsys.readouterr().out
    assert ": `bn` seed 0, a variant this run does not plan\n" in out, out


def test_a_run_over_a_garbled_manifest_of_the_run_before_plans_afresh(capsys, in_root, tmp_path):
    from report_fixtures import suite_store

    from jobs.store import Store

    suite_store(tmp_path, seeds=1)
    store = Store(str(tmp_path))
    garbled = {**store.read_experiment("batchnorm"), "jobs": [{"variant": "bn", "seed": 0, "job_id": "../x"}]}
    store.write_experiment("batchnorm", garbled)
    run = ["run", "specs/batchnorm.yaml", "--synthetic", "--results", str(tmp_path), "--no-report"]
    assert main(run) == 0
    assert "2 jobs: 0 trained, 2 already stored" in capsys.readouterr().out
    assert [j["job_id"] for j in store.read_experiment("batchnorm")["jobs"]] != ["../x"]  # planned afresh
    store.write_bytes(store.experiment_path("batchnorm"), b"{")
    assert main(run) == 0
    out = capsys.readouterr().out
    assert f"notice: batchnorm: the manifest of the run before cannot be read ({tmp_path}/experiments/" in out
    assert "not valid JSON" in out and "this run's replaces it" in out


def test_a_store_that_fails_mid_run_stops_it_in_one_line_keeping_what_finished(capsys, in_root, tmp_path, monkeypatch):
    from jobs.store import JobRecord, Store

    finish, finished = JobRecord.finish, []

    def disk_full_after_one(record, *args):
        if finished:
            raise OSError(28, "No space left on device")
        finish(record, *args)
        finished.append(record.id)

    monkeypatch.setattr(JobRecord, "finish", disk_full_after_one)
    run = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--in-process", "--results", str(tmp_path)]
    assert main(run) == 3
    out = capsys.readouterr().out
    assert out.startswith("2 jobs to train, 0 already stored; training in this process\n"), out
    assert f"results store {tmp_path}: cannot write the outcome of dropout/" in out, out
    assert "(OSError: [Errno 28] No space left on device); the run stopped, and the jobs it stored before" in out
    states = {job: Store(str(tmp_path)).job(job).state()[0] for job in Store(str(tmp_path)).job_ids()}
    assert sorted(states.values()) == ["done", "interrupted"] and states[finished[0]] == "done"
    monkeypatch.setattr(JobRecord, "finish", finish)
    assert main([*run, "--no-report"]) == 0
    assert "2 jobs: 1 trained, 1 already stored" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("", "ObjectStoreFullError: Failed to put the object: the object store is full."),
        ("ray://127.0.0.1:10001", "ConnectionError: Failed to reconnect within the reconnection grace period (30s)"),
    ],
)
def test_ray_failing_mid_run_stops_it_in_one_line_keeping_what_finished(
    capsys, in_root, tmp_path, monkeypatch, address, said
):
    import ray

    from jobs import run
    from jobs.executors import InProcessExecutor
    from jobs.store import Store

    class RayFailsAfterOne(InProcessExecutor):
        def run(self, jobs, datasets, store_uri, on_progress=None):
            yield next(super().run(jobs, datasets, store_uri, on_progress))
            if address:  # what Ray Client raises once its connection to the cluster is lost
                raise ConnectionError("Failed to reconnect within the reconnection grace period (30s)")
            raise ray.exceptions.ObjectStoreFullError("Failed to put the object: the object store is full.\nadvice")

    executor = RayFailsAfterOne(frozenset())
    monkeypatch.setattr(run, "start_executor", lambda options: (executor, [{"CPU": 2.0}], True))
    monkeypatch.setenv("RAY_ADDRESS", address)
    args = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--in-process", "--results", str(tmp_path)]
    assert main([*args, "--no-report"]) == 1
    out = capsys.readouterr().out
    assert f"Ray failed mid-run ({said}" in out, out
    assert f"; the run stopped: finished jobs are stored in {tmp_path}; run the same command again to resume" in out
    assert "Traceback" not in out, out
    store = Store(str(tmp_path))
    assert sorted(store.job(job).state()[0] for job in store.job_ids()) == ["done", "interrupted"]
    monkeypatch.undo()
    assert main([*args, "--no-report"]) == 0
    assert "2 jobs: 1 trained, 1 already stored" in capsys.readouterr().out


def test_a_report_that_cannot_be_written_there_is_one_line_and_the_results_stay(capsys, tmp_path):
    from report_fixtures import suite_store

    suite_store(tmp_path / "results", seeds=1)
    (tmp_path / "afile").write_text("")
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "afile")]) == 3
    out = capsys.readouterr().out
    assert f"report: cannot write into {tmp_path / 'afile'} (NotADirectoryError: " in out
    assert f"the results are stored: `regimen report --results {tmp_path / 'results'} --out FOLDER`" in out
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0


def test_a_report_goes_into_a_bucket_given_as_out(capsys, tmp_path, monkeypatch):
    """A URI, not a path: ``Path("s3://b/r")`` would be the local folder ``s3:/b/r``."""
    import fsspec
    from report_fixtures import suite_store

    monkeypatch.chdir(tmp_path)
    suite_store(tmp_path / "results", seeds=1)
    memory = fsspec.filesystem("memory")
    try:
        assert main(["report", "--results", "results", "--out", "memory://bucket/report"]) == 0
        assert "report: memory:///bucket/report/index.html" in capsys.readouterr().out
        assert memory.isfile("/bucket/report/summary.md") and not (tmp_path / "memory:").exists()
    finally:
        memory.rm("/bucket", recursive=True)
    assert main(["report", "--results", "results", "--out", "zzz://bucket/report"]) == 2
    assert capsys.readouterr().out == "--out zzz://bucket/report: ValueError: Protocol not known: zzz\n"


def test_a_run_whose_report_cannot_be_written_exits_3_with_its_jobs_stored(capsys, in_root, tmp_path):
    (tmp_path / "report").write_text("")  # where the run writes its report
    run = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--in-process", "--results", str(tmp_path)]
    assert main(run) == 3
    out = capsys.readouterr().out
    assert "2 jobs: 2 trained, 0 already stored, 0 failed" in out and "report: cannot write into" in out
    assert main([*run, "--no-report"]) == 0  # nothing to train again
    assert "2 jobs: 0 trained, 2 already stored" in capsys.readouterr().out


def test_a_storage_librarys_retries_are_one_line_each_without_their_traceback(capsys):
    storage_logs_in_one_line()
    storage_logs_in_one_line()  # main() runs it every time: still one line per record
    try:
        raise ConnectionError("Name or service not known")
    except ConnectionError:
        logging.getLogger("gcsfs").error("_request out of retries on exception: %s", "no DNS\n<html>", exc_info=True)
    assert capsys.readouterr().err == "gcsfs: _request out of retries on exception: no DNS\n"


#: tcpmux's port: privileged and long unused, so nothing listens there (a free port picked when tests are
#: collected could be taken by a Ray started in between)
CLOSED_PORT = 1


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("HTTP://127.0.0.1:8265", "is a URL, as the dashboard's (for `ray job submit`)"),
        (f"127.0.0.1:{CLOSED_PORT}", "no Ray cluster answers at 127.0.0.1:"),
        ("ray://127.0.0.1", "no Ray cluster answers at ray://127.0.0.1 (port 443, gRPC's default; Ray Client"),
        ("head-node", "--address head-node: expected HOST:PORT (the cluster's GCS address, port 6379 by default)"),
        (":", "--address :: expected HOST:PORT"),
        ("localhost:abc", "--address localhost:abc: expected HOST:PORT"),
    ],
)
def test_an_address_without_a_ray_cluster_is_refused_at_once(tmp_path, capsys, in_root, monkeypatch, address, expected):
    """Ray would retry an unreachable address for about 14 minutes, then raise its traceback."""
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # where the token advice would be given, were it due
    code = main(["run", "specs/dropout.yaml", "--synthetic", "--address", address, "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 2 and expected in out and out.rstrip().endswith("nothing was trained"), out
    assert "RAY_AUTH_MODE" not in out  # no cluster refused a token: that advice would mislead
    assert not (tmp_path / "jobs").exists()


def test_a_submitted_job_refuses_a_relative_results_folder_ray_would_delete(tmp_path, capsys, in_root, monkeypatch):
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what Ray's job manager gives an entrypoint
    for results in ("results-here", "file://results-here"):
        assert main(["run", "specs/dropout.yaml", "--synthetic", "--results", results, "--in-process"]) == 2
        assert f"--results {results}: in a job submitted to Ray" in capsys.readouterr().out
    assert not (ROOT / "results-here").exists()
    assert main(["run", "specs/dropout.yaml", "--synthetic", "--results", "zzz://results", "--in-process"]) == 2
    assert capsys.readouterr().out == "results store zzz://results: ValueError: Protocol not known: zzz\n"


def test_a_run_into_a_folder_another_run_is_writing_is_refused(tmp_path, capsys, in_root):
    with another_run_holding(tmp_path) as holder:
        code = main(["run", "specs/dropout.yaml", "--synthetic", "--results", str(tmp_path), "--in-process"])
    out = capsys.readouterr().out
    assert code == 2 and f"another `regimen run` is writing there (pid {holder.pid} on " in out, out
    assert "give this run a --results of its own" in out and out.rstrip().endswith("nothing was trained")
    assert not (tmp_path / "jobs").exists() and not (tmp_path / "experiments").exists()


def test_a_run_into_a_bucket_another_run_is_writing_is_refused(capsys, in_root, bucket):
    holder = "pid 7 on a-cluster-head, since 2026-11-29T09:00:00+00:00"
    bucket.write_json(bucket.path("run.lease"), {"holder": holder, "token": "theirs", "renewed": time.time()})
    code = main(["run", "specs/dropout.yaml", "--synthetic", "--results", bucket.uri, "--in-process"])
    out = capsys.readouterr().out
    assert code == 2 and f"another `regimen run` is writing there ({holder}; its lease was renewed" in out, out
    assert out.rstrip().endswith("nothing was trained") and not bucket.fs.exists(bucket.path("jobs"))


def test_a_run_into_a_bucket_taken_over_stops_and_leaves_its_jobs_to_the_run_that_took_it(
    capsys, in_root, monkeypatch, bucket
):
    monkeypatch.setattr(Store, "hold_lost", lambda self: True)  # its lease expired unrenewed (tests/test_lease.py)
    run = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--in-process"]
    code = main([*run, "--results", bucket.uri])
    out = capsys.readouterr().out
    assert code == 3 and "another run took it over, this run having not renewed its lease in time" in out, out
    states = {bucket.job(job_id).status()["state"] for job_id in bucket.job_ids()}
    assert states == {"running"}  # as the run that took the store over set them, not marked interrupted


def test_a_run_terminated_while_it_takes_its_hold_on_a_bucket_leaves_no_lease(capsys, in_root, monkeypatch, bucket):
    acquire = BucketLease.acquire

    def acquire_terminated_while_settling(lease):
        lease.sleep = lambda seconds: os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's time limit, say
        acquire(lease)

    monkeypatch.setattr(BucketLease, "acquire", acquire_terminated_while_settling)
    code = main(["run", "specs/dropout.yaml", "--synthetic", "--in-process", "--results", bucket.uri])
    assert code == 143 and "terminated (SIGTERM)" in capsys.readouterr().out
    assert not bucket.fs.exists(bucket.path("run.lease"))


def test_data_says_where_each_dataset_is_found_and_how_to_stage_the_missing(tmp_path, capsys, monkeypatch):
    staged = tmp_path / "staged"
    (staged / "fashion-mnist").mkdir(parents=True)
    images, labels = np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8)
    np.savez(staged / "mnist.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    (staged / "fashion-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"gz")  # one file of four
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty Keras cache
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    assert main(["data", "--data-dir", str(staged)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"found    mnist          {staged / 'mnist.npz'}" in lines
    (fashion,) = [line for line in lines if line.startswith("missing  fashion_mnist")]
    lacking = "train-labels-idx1-ubyte.gz, t10k-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz"
    assert f"{staged / 'fashion-mnist'} (without {lacking});" in fashion
    (imdb,) = [line for line in lines if line.startswith("missing  imdb")]
    assert str(staged / "imdb.npz") in imdb and str(tmp_path / "keras" / "datasets" / "imdb.npz") in imdb
    assert "  DIR/imdb.npz" in lines and "  DIR/fashion-mnist/train-images-idx3-ubyte.gz" in lines


def test_data_reads_what_it_finds_and_names_a_corrupt_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "mnist.npz").write_bytes(b"npz")  # there, not empty, not an archive
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert main(["data", "--data-dir", str(tmp_path)]) == 2
    (mnist,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("found", "corrupt"))]
    assert mnist.startswith(f"corrupt  mnist          {tmp_path / 'mnist.npz'}: not a readable .npz file")


def test_ctrl_c_during_a_forced_run_says_which_results_it_kept(capsys, in_root, monkeypatch, tmp_path):
    """With --force, "run it again to resume" would mislead: a rerun with --force trains every job again."""
    from jobs import run

    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "start_executor", interrupted)
    ctrl_c = signal.getsignal(signal.SIGINT)
    try:  # the run ignores further Ctrl-Cs once it stops; this process must not
        code = main(["run", "specs/dropout.yaml", "--synthetic", "--force", "--results", str(tmp_path), "--no-report"])
    finally:
        signal.signal(signal.SIGINT, ctrl_c)
    out = capsys.readouterr().out
    assert code == 130 and f"interrupted: finished jobs are stored in {tmp_path}; jobs being trained again" in out
    assert "run the command again without --force to keep those" in out and "run the same command again" not in out
