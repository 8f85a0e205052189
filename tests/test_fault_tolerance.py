"""Nothing is lost when a job, a node or the driver dies: jobs resume after their last finished epoch,
with no epoch missing or repeated, and finished jobs are never retrained."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import ROOT, SPECS, load_specs
from rich.console import Console

from jobs import run
from jobs.data import synthetic
from jobs.executors import Executor, Outcome
from jobs.loading import load_experiments
from jobs.plan import data_key, expand
from jobs.run import RunOptions, execute, resuming
from jobs.store import Store
from jobs.worker import JobFailed, train


def dropout_jobs(epochs: int, backend: str | None = None):
    return expand(load_specs(SPECS / "dropout.yaml"), synthetic=True, max_epochs=epochs, backend=backend)


def interrupted(tmp_path, epochs: int, dies_after: int):
    """(job, data, its record) of a job of ``epochs`` epochs whose process died right after it stored
    epoch ``dies_after`` and before its checkpoint of that epoch: the worst moment."""
    job = dropout_jobs(epochs)[0]
    data = synthetic(job.dataset, train=500, test=200)
    record = Store(str(tmp_path)).job(job.id)
    record.start(job.describe())

    def dies(job_id, epoch, epochs, logs):
        if epoch == dies_after:
            raise RuntimeError("node lost")

    with pytest.raises(JobFailed):
        train(job, data, str(tmp_path), dies)
    return job, data, record


def test_a_rerun_names_the_jobs_it_resumes_at_their_checkpoints_epoch(tmp_path):
    job, _, record = interrupted(tmp_path, epochs=5, dies_after=3)
    assert len(record.epochs()["loss"]) == 3  # stored before it died; its checkpoint has 2
    assert resuming([job], record.store) == [f"{job.label} (after epoch 2 of 5)"]
    record.write_checkpoint(b"not a zip")  # the worker drops it and trains from the first epoch
    assert resuming([job], record.store) == []
    record.drop_attempt()
    assert resuming([job], record.store) == []


def test_an_interrupted_job_resumes_after_its_last_finished_epoch(tmp_path):
    job, data, record = interrupted(tmp_path, epochs=5, dies_after=3)
    assert len(record.epochs()["loss"]) == 3
    told = []
    output = train(job, data, str(tmp_path), lambda job_id, epoch, epochs, logs: told.append((epoch, logs)))
    assert "resumed after epoch 2 from the checkpoint" in output["log"]  # one epoch redone
    assert [epoch for epoch, _ in told] == [2, 3, 4, 5]  # the progress starts at the checkpoint's epoch
    assert told[0][1]["loss"] == output["history"]["loss"][1]  # with that epoch's metrics
    epoch_lines = [line.split()[2] for line in output["log"].splitlines() if line.split()[1] == "epoch"]
    assert epoch_lines == [f"{n}/5" for n in range(1, 6)]  # the first attempt's lines first, none twice
    history = output["history"]
    assert all(len(values) == 5 for values in history.values()), history
    assert output["result"]["epochs_run"] == 5
    timings = output["result"]["timings"]
    assert timings["epochs_trained"] == 3  # its speed: this attempt's time over this attempt's epochs
    assert timings["seconds_per_epoch"] == pytest.approx(timings["fit_s"] / 3, abs=1e-3)
    assert timings["training_s"] > timings["fit_s"]  # its training time: the earlier attempt's two epochs too
    assert Path(record.checkpoint_file).is_file()  # kept until the result is stored...
    record.finish(output["history"], output["result"], output["log"])
    assert not Path(record.checkpoint_file).exists()  # ...then dropped
    record.start(job.describe())
    restored = train(job, data, str(tmp_path))  # from scratch: no checkpoint is left
    assert "resumed" not in restored["log"] and len(restored["history"]["loss"]) == 5
    assert restored["result"]["timings"]["epochs_trained"] == 5
    assert restored["result"]["timings"]["training_s"] == restored["result"]["timings"]["fit_s"]


def same_after_resume(job, folder) -> None:
    """Train ``job`` straight through, and again cut short after epoch 3 and resumed: the same history
    and test metrics, to the last bit."""
    data = synthetic(job.dataset, train=2000, test=200)  # four batches an epoch
    whole = Path(folder) / "whole"
    Store(str(whole)).job(job.id).start(job.describe())
    uninterrupted = train(job, data, str(whole))
    cut = Path(folder) / "cut"
    Store(str(cut)).job(job.id).start(job.describe())

    def dies(job_id, epoch, epochs, logs):
        if epoch == 3:
            raise RuntimeError("node lost")

    with pytest.raises(JobFailed):
        train(job, data, str(cut), dies)
    resumed = train(job, data, str(cut))
    assert "resumed after epoch 2 from the checkpoint" in resumed["log"]
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["result"]["test"] == uninterrupted["result"]["test"]


@pytest.mark.parametrize("variant", ["basic", "dropout"])
def test_a_resumed_job_ends_exactly_as_an_uninterrupted_one(tmp_path, variant):
    """Dropout draws its masks from a random state the checkpoint keeps: without it, the resumed epochs
    drew the first epochs' masks again."""
    same_after_resume(next(job for job in dropout_jobs(4) if job.uses[0].variant == variant), tmp_path)


RESUME_ON_JAX = """
import sys, pytest
from test_fault_tolerance import dropout_jobs, same_after_resume
job = next(job for job in dropout_jobs(4, backend="jax") if job.uses[0].variant == "dropout")
same_after_resume(job, sys.argv[1])
print("resumed exactly")
"""


def test_a_resumed_job_on_jax_ends_exactly_as_an_uninterrupted_one(tmp_path):
    """JAX shuffles each epoch from numpy's random state, which the checkpoint keeps too."""
    done = subprocess.run(
        [sys.executable, "-c", RESUME_ON_JAX, str(tmp_path)],
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        timeout=600,
    )
    assert done.returncode == 0 and "resumed exactly" in done.stdout, done.stdout + done.stderr[-3000:]


def test_a_checkpoint_without_the_history_of_its_epochs_is_dropped_and_the_job_trained_from_the_start(tmp_path):
    job, data, record = interrupted(tmp_path, epochs=4, dies_after=3)
    record.write_epochs({"loss": [0.7]})  # the store lost epochs the checkpoint has
    output = train(job, data, str(tmp_path))
    assert "the checkpoint was at epoch 2 but the store holds the metrics of 1 epoch" in output["log"]
    assert "resumed" not in output["log"] and all(len(values) == 4 for values in output["history"].values())
    assert output["result"]["timings"]["epochs_trained"] == 4


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut short"])
def test_a_checkpoint_that_cannot_be_read_is_dropped_and_the_job_trained_from_the_start(tmp_path, damage):
    job, data, record = interrupted(tmp_path, epochs=4, dies_after=3)
    Path(record.checkpoint_file).write_bytes(damage)
    output = train(job, data, str(tmp_path))
    assert "the checkpoint cannot be used (BadZipFile: " in output["log"]
    assert output["result"]["timings"]["epochs_trained"] == 4 and len(output["history"]["loss"]) == 4


def test_a_bucket_store_keeps_the_checkpoint_for_a_retry_on_any_node(bucket):
    """A store Keras cannot write (s3://, here fsspec's memory://) gets a copy after every epoch."""
    job = dropout_jobs(4)[0]
    data = synthetic(job.dataset, train=500, test=200)
    record = bucket.job(job.id)
    record.start(job.describe())

    def die_after_epoch_2(job_id, epoch, epochs, logs):
        if epoch == 2:
            raise RuntimeError("preempted")

    with pytest.raises(JobFailed):
        train(job, data, bucket.uri, die_after_epoch_2)
    assert record.checkpoint()  # the epoch-1 checkpoint is in the bucket
    output = train(job, data, bucket.uri)  # a fresh local folder: everything comes from the bucket
    assert "resumed after epoch 1 from the checkpoint" in output["log"]
    assert all(len(values) == 4 for values in output["history"].values())
    record.finish(output["history"], output["result"], output["log"])
    assert not record.store.fs.exists(record.checkpoint_file)


def test_a_job_outliving_its_driver_stops_once_a_newer_attempt_starts(tmp_path):
    job = dropout_jobs(5)[0]
    data = synthetic(job.dataset, train=500, test=200)
    record = Store(str(tmp_path)).job(job.id)
    record.start(job.describe())

    def new_run_starts_at_epoch_2(job_id, epoch, epochs, logs):
        if epoch == 2:
            record.start(job.describe())  # what the next `regimen run` does before dispatching

    with pytest.raises(JobFailed, match="Superseded: another process took this job over") as stopped:
        train(job, data, str(tmp_path), new_run_starts_at_epoch_2)
    assert len(record.epochs()["loss"]) == 2  # nothing written after the newer attempt began
    newer = record.status()
    run.persist(record.store, Outcome(job, failure=stopped.value))  # its driver, still alive, stores nothing
    assert record.status() == newer and newer["state"] == "running"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def epochs_stored(results: Path) -> dict[str, int]:
    """job id -> epochs in the store: the attempt in progress's, or the finished job's."""
    found = {}
    for folder in (results / "jobs").glob("*"):
        history = folder / "epochs.json" if (folder / "epochs.json").exists() else folder / "history.json"
        try:
            found[folder.name] = len(json.loads(history.read_text()).get("loss", []))
        except (FileNotFoundError, ValueError):
            found[folder.name] = 0
    return found


def default_sigint() -> None:
    """In the child: Ctrl-C's default action even when these tests run as a background job, whose
    commands a non-interactive shell starts with SIGINT ignored (and Python then keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs", "run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        preexec_fn=default_sigint,
    )


def processes() -> dict[int, list[str]]:
    """pid -> the fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            found[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
    return found


def children_of(parent: int) -> list[int]:
    return [pid for pid, fields in processes().items() if int(fields[1]) == parent]


def in_session(session: int) -> list[int]:
    """Every process of a session: a run started in a session of its own, and what it started."""
    return [pid for pid, fields in processes().items() if int(fields[3]) == session]


def resumed_jobs(results: Path) -> dict[str, int]:
    """job id -> the epoch its last attempt resumed after, from the job's log."""
    found = {}
    for log in (results / "jobs").glob("*/log.txt"):
        for line in log.read_text().splitlines():
            if "resumed after epoch" in line:
                found[log.parent.name] = int(line.split("resumed after epoch ")[1].split()[0])
    return found


def assert_at_most_one_epoch_redone(before: dict[str, int], resumed: dict[str, int]) -> None:
    """``before``: epochs each job had stored when its process died; every one of them resumed."""
    assert resumed, "no job resumed from a checkpoint"
    for job_id, epoch in resumed.items():
        assert epoch >= 1 and 0 <= before[job_id] - epoch <= 1, (
            f"{job_id}: {before[job_id]} stored, resumed after {epoch}"
        )


@pytest.mark.ray
def test_node_loss_mid_job_is_retried_on_another_node_and_resumes(tmp_path):
    from ray.cluster_utils import Cluster

    fast_failure_detection = {
        "health_check_period_ms": 500,
        "health_check_timeout_ms": 500,
        "health_check_failure_threshold": 3,
    }
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": fast_failure_detection},
    )
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    results = tmp_path / "results"
    run = start_run(
        "specs/dropout.yaml",
        "--synthetic",
        "--max-epochs",
        "12",
        "--address",
        cluster.address,
        "--results",
        str(results),
        "--no-report",
    )
    try:
        wait_for(
            lambda: len(epochs_stored(results)) == 2 and min(epochs_stored(results).values()) >= 2,
            240,
            "both jobs to finish two epochs, one on each node",
        )
        for pid in children_of(worker.all_processes["raylet"][0].process.pid):  # the whole node dies at once:
            os.kill(pid, signal.SIGKILL)  # its workers (else they outlive the raylet for an epoch or so)...
        cluster.remove_node(worker, allow_graceful=False)  # ...and its raylet
        at_loss = epochs_stored(results)
        output, _ = run.communicate(timeout=600)
    finally:
        run.kill()
        cluster.shutdown()
    assert run.returncode == 0, output
    assert "2 jobs: 2 trained" in output
    store = Store(str(results))
    for job_id in store.job_ids():
        history = store.job(job_id).history()
        assert all(len(values) == 12 for values in history.values()), (job_id, history)
    resumed = resumed_jobs(results)
    assert len(resumed) == 1  # exactly the job on the lost node
    assert_at_most_one_epoch_redone(at_loss, resumed)


@pytest.mark.ray
def test_driver_killed_then_rerun_retrains_nothing_finished_and_resumes_the_rest(tmp_path):
    results = tmp_path / "results"
    args = (
        "specs/dropout.yaml",
        "tests/specs/diverges.yaml",
        "--synthetic",
        "--max-epochs",
        "10",
        "--results",
        str(results),
        "--no-report",
    )
    run = start_run(*args)
    store = Store(str(results))

    def one_done_one_midway():
        done = [j for j in store.job_ids() if store.job(j).is_done()]
        return done and any(n >= 2 and j not in done for j, n in epochs_stored(results).items())

    try:
        wait_for(one_done_one_midway, 300, "a finished job and another past epoch 2")
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the driver and everything it started: no cleanup at all
        run.wait()
    # Ray's processes outlive a SIGKILLed driver for a few seconds; wait until no job's history grows
    at_kill, still = {}, 0
    while still < 3:
        time.sleep(1)
        still, at_kill = (still + 1 if epochs_stored(results) == at_kill else 0), epochs_stored(results)
    finished = {j: store.job(j).result() for j in store.job_ids() if store.job(j).is_done()}
    again = start_run(*args)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 1, output  # the diverging job fails, by design
    assert f"{len(finished)} already stored" in output
    for job_id, result in finished.items():
        assert store.job(job_id).result() == result  # never retrained
    resumed = resumed_jobs(results)
    assert_at_most_one_epoch_redone(at_kill, resumed)
    said = re.findall(r"resuming from its checkpoint: \S+ \(after epoch (\d+) of 10\)", output)
    assert sorted(map(int, said)) == sorted(resumed.values()), output  # said before it trains
    midway = {j for j, n in at_kill.items() if n >= 1 and j not in finished and store.job(j).is_done()}
    assert midway <= set(resumed), f"jobs restarted from scratch: {midway - set(resumed)}"
    for job_id in store.job_ids():
        record = store.job(job_id)
        if record.is_done():
            assert all(len(v) == record.result()["epochs"] for v in record.history().values())


@pytest.mark.ray
@pytest.mark.parametrize(
    ("stops", "code", "said"),
    [
        ((signal.SIGINT,), 130, "interrupted"),
        ((signal.SIGTERM,), 143, "terminated (SIGTERM)"),
        ((signal.SIGINT,) * 12, 130, "interrupted"),  # an impatient user, while the run cleans up and exits
    ],
)
def test_ctrl_c_or_sigterm_cancels_and_says_how_to_resume(tmp_path, stops, code, said):
    results = tmp_path / "results"
    # the overfit job's 150 epochs outlast any delay in sending the signal: a run that ends by itself
    # before it arrives cannot pass for one that ignored it
    run = start_run("specs/overfitting.yaml", "--synthetic", "--results", str(results), "--no-report")
    try:
        wait_for(
            lambda: max(epochs_stored(results).values(), default=0) >= 1 if (results / "jobs").exists() else False,
            240,
            "a job to finish one epoch",
        )
        for stop in stops:
            run.send_signal(stop)  # nothing once the run has exited
            time.sleep(0.25)
        output, _ = run.communicate(timeout=120)
        wait_for(lambda: not in_session(run.pid), 30, "the run's Ray processes to stop with it")
    finally:
        run.kill()
    assert run.returncode == code, output
    assert f"{said}" in output and "run the same command again to resume" in output
    assert "Traceback" not in output and "SIGTERM received" not in output
    store = Store(str(results))
    states = {store.job(job_id).status()["state"] for job_id in store.job_ids()}
    assert "interrupted" in states and states <= {"interrupted", "done"}  # none left "running"


class RetrainsOneThenInterrupted(Executor):
    """Trains the first job to the end, then is interrupted (Ctrl-C) once the second one's first epoch ends."""

    def run(self, jobs, datasets, store_uri, on_progress=None):
        first, second = jobs

        def ctrl_c(job_id, epoch, epochs, logs):
            raise KeyboardInterrupt

        yield Outcome(first, output=train(first, datasets[data_key(first.dataset, True)], store_uri))
        train(second, datasets[data_key(second.dataset, True)], store_uri, ctrl_c)

    def cancel(self):
        pass


def test_force_interrupted_keeps_every_result_it_had_not_replaced_yet(tmp_path, monkeypatch):
    (item,), _ = load_experiments([ROOT / "specs" / "l1.yaml"])
    options = RunOptions(synthetic=True, max_epochs=2, executor="local")
    store, console = Store(str(tmp_path)), Console(file=io.StringIO())
    assert len(execute([item], store, options, console).finished) == 2
    before = {job_id: (store.job(job_id).result(), store.job(job_id).history()) for job_id in store.job_ids()}
    monkeypatch.setattr(run, "start_executor", lambda options: (RetrainsOneThenInterrupted(), [{"CPU": 2.0}], True))
    with pytest.raises(KeyboardInterrupt):
        execute([item], store, replace(options, force=True), console)
    retrained = [j for j in store.job_ids() if store.job(j).result() != before[j][0]]
    assert len(retrained) == 1  # the first job's new result replaced its old one
    (cut_short,) = set(before) - set(retrained)
    record = store.job(cut_short)
    assert record.is_done() and (record.result(), record.history()) == before[cut_short]
    assert record.epochs() is None and record.checkpoint() is None  # the new attempt, which nothing resumes
    assert execute([item], store, options, console).skipped == 2  # a plain rerun keeps both
    assert store.job(cut_short).result() == before[cut_short][0]


def test_force_trains_an_interrupted_job_from_its_first_epoch(tmp_path):
    _, _, record = interrupted(tmp_path, epochs=4, dies_after=3)
    assert record.checkpoint()  # a resumable attempt: a plain rerun would continue after epoch 2
    (item,), _ = load_experiments([ROOT / "specs" / "dropout.yaml"])
    options = RunOptions(synthetic=True, max_epochs=4, executor="local", force=True)
    execute([item], record.store, options, Console(file=io.StringIO()))
    result = record.result()
    assert record.is_done() and result["timings"]["epochs_trained"] == 4
    assert "resumed" not in record.store.fs.cat(record.file("log.txt")).decode()


def test_a_checkpoint_with_other_random_layers_is_refused_though_its_weights_fit():
    """dropout/basic and dropout/dropout have the same weights; only the dropout layers' random states
    tell their checkpoints apart."""
    from jobs import checkpoint
    from jobs.models import build_model

    basic, dropout = (build_model(job.dataset, job.layers, job.training, name=job.id) for job in dropout_jobs(2))
    assert [w.shape for w in basic.weights] == [w.shape for w in dropout.weights]
    saved = checkpoint.dump(basic, 1, 0.5, ["a line"])
    with pytest.raises(ValueError, match="the checkpoint has 0 random states, the model 2"):
        checkpoint.restore(dropout, saved)
    assert checkpoint.restore(basic, saved).log == ("a line",)
