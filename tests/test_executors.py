"""The executor contract, for the in-process twin and for Ray: every job gives one outcome, failures
are outcomes with their reason, results arrive by value, and progress is reported per epoch."""

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, SPECS, load_specs, with_resources

from jobs import checkpoint
from jobs.data import Arrays, synthetic
from jobs.executors import InProcessExecutor, RayExecutor, worker_env
from jobs.plan import Use, data_key, expand, job_id
from jobs.worker import configure_backend


@pytest.fixture(scope="module")
def jobs_and_data():
    jobs = expand(
        load_specs(SPECS / "dropout.yaml", ROOT / "tests" / "specs" / "diverges.yaml"), synthetic=True, max_epochs=2
    )
    datasets = {data_key(job.dataset, True): synthetic(job.dataset, train=600, test=200) for job in jobs}
    return jobs, datasets


def check_contract(executor, jobs, datasets, store_uri):
    seen = []
    outcomes = list(executor.run(jobs, datasets, store_uri, seen.append))
    assert sorted(o.job.id for o in outcomes) == sorted(job.id for job in jobs)
    by_variant = {o.job.uses[0].variant: o for o in outcomes}
    failed = by_variant["exploding"]
    assert failed.output is None and failed.failure.reason.startswith("diverged at epoch 1")
    assert "Traceback" in failed.failure.details
    for name in ("basic", "dropout", "fine"):
        outcome = by_variant[name]
        assert outcome.failure is None, outcome.failure and outcome.failure.details
        history, result = outcome.output["history"], outcome.output["result"]
        epochs = outcome.job.training.epochs
        assert len(history["loss"]) == len(history["val_loss"]) == epochs == result["epochs_run"]
        assert set(result["test"]) >= {"loss", "accuracy"} and result["data"]["synthetic"]
    assert seen, "no progress was reported"
    return outcomes, seen


def test_in_process_executor(jobs_and_data, tmp_path):
    jobs, datasets = jobs_and_data
    outcomes, seen = check_contract(InProcessExecutor(), jobs, datasets, str(tmp_path))
    # every epoch reaches the progress view (Ray's polling may skip some; in process each one is seen)
    for outcome in outcomes:
        epochs = sorted({snapshot[outcome.job.id]["epoch"] for snapshot in seen if outcome.job.id in snapshot})
        trained = outcome.job.training.epochs if outcome.failure is None else 0  # diverged in its first epoch
        assert epochs == list(range(trained + 1)), (outcome.job.label, epochs)


def on_jax(job):
    """The same job on Keras' JAX backend, under a variant name of its own."""
    moved = replace(job, backend="jax", uses=(Use(job.uses[0].experiment, f"{job.uses[0].variant}-jax", 0),))
    return replace(moved, id=job_id(moved.identity()))


@pytest.mark.ray
def test_ray_executor(jobs_and_data, tmp_path, local_ray):
    jobs, datasets = jobs_and_data
    two_cpus = with_resources(jobs[1], num_cpus=2)
    jax = on_jax(jobs[0])
    jobs = [jobs[0], two_cpus, *jobs[2:], jax]  # run after a 1-CPU job: no worker process keeps its threads
    outcomes, _ = check_contract(RayExecutor(poll_seconds=0.2), jobs, datasets, str(tmp_path))
    environments = {o.job.id: o.output["result"]["environment"] for o in outcomes if o.output}
    on_jax_backend = environments.pop(jax.id)
    assert on_jax_backend["backend"] == "jax" and on_jax_backend["jax"] and on_jax_backend["device"] == "CPU"
    assert {environment["backend"] for environment in environments.values()} == {"tensorflow"}
    threads = {job_id: environment["intra_op_threads"] for job_id, environment in environments.items()}
    assert threads.pop(two_cpus.id) == 2 and set(threads.values()) == {1}
    # worker processes are reused (TensorFlow imported once per process), but only by jobs with the same
    # threads and backend
    two_cpu_process = environments.pop(two_cpus.id)["pid"]
    one_cpu_processes = {environment["pid"] for environment in environments.values()}
    assert two_cpu_process not in one_cpu_processes and on_jax_backend["pid"] not in one_cpu_processes
    assert max(environment["jobs_in_process"] for environment in environments.values()) >= 2
    jax_outcome = next(o for o in outcomes if o.job.id == jax.id)
    assert len(jax_outcome.output["history"]["loss"]) == jax.training.epochs


def test_a_process_keeps_the_backend_of_its_first_job(jobs_and_data, tmp_path):
    jobs, datasets = jobs_and_data
    configure_backend("tensorflow", 1, 0, None)  # as if a TensorFlow job ran here first
    import keras

    assert keras.backend.backend() == "tensorflow"
    (outcome,) = InProcessExecutor().run([on_jax(jobs[0])], datasets, str(tmp_path))
    assert outcome.failure is not None
    assert "already runs Keras on tensorflow; a jax job needs a process of its own" in outcome.failure.reason


def test_a_job_with_broken_data_fails_with_the_reason(jobs_and_data, tmp_path):
    jobs, datasets = jobs_and_data
    job = jobs[0]
    good = datasets[data_key(job.dataset, True)]
    broken = Arrays(good.x_train[:, :7], good.y_train, good.x_test, good.y_test, source="broken")
    (outcome,) = InProcessExecutor().run([job], {data_key(job.dataset, True): broken}, str(tmp_path))
    assert outcome.failure is not None and "ValueError" in outcome.failure.reason


def test_a_seed_makes_runs_repeatable_and_another_seed_differs(jobs_and_data, tmp_path):
    """The report's paired test needs both: one seed giving one result, and seeds differing (identical
    seeds would make every difference noiseless and every claim 'more than noise')."""
    jobs, datasets = jobs_and_data
    job = next(j for j in jobs if j.uses[0].variant == "fine")
    seed_1 = replace(job, seed=1, uses=(replace(job.uses[0], seed=1),))
    seed_1 = replace(seed_1, id=job_id(seed_1.identity()))
    first, again, other = (
        next(InProcessExecutor().run([j], datasets, str(tmp_path / name))).output["history"]["loss"]
        for j, name in ((job, "a"), (job, "b"), (seed_1, "c"))
    )
    np.testing.assert_allclose(first, again, rtol=1e-5)
    assert not np.allclose(first, other, rtol=1e-3), "seed 1 trained exactly as seed 0"


@pytest.mark.ray
def test_a_worker_process_starts_with_its_jobs_environment(jobs_and_data, local_ray):
    """glibc reads MALLOC_ARENA_MAX once, as a process starts: Ray must start the worker with it (its
    /proc environ is what it was started with), not only set it in os.environ afterwards."""
    jobs, _ = jobs_and_data

    @local_ray.remote
    def started_with() -> list[bytes]:
        return Path("/proc/self/environ").read_bytes().split(b"\0")

    environ = local_ray.get(started_with.options(runtime_env={"env_vars": worker_env(jobs[0])}).remote())
    assert b"MALLOC_ARENA_MAX=1" in environ and b"KERAS_BACKEND=tensorflow" in environ


@pytest.mark.ray
def test_only_the_fresh_process_task_limits_its_process_to_one_job(local_ray):
    # Ray gives max_calls=1 to a function declared with GPUs; RayExecutor gives GPUs per task through
    # .options(), so its reusing task must stay unlimited for GPU jobs to share processes (private attribute:
    # this pins Ray's rule, measured on an H200 in BENCHMARKS.md)
    executor = RayExecutor()
    assert executor.reusing_task._max_calls == 0 and executor.fresh_process_task._max_calls == 1


@pytest.mark.ray
def test_the_ray_executor_says_when_gpu_jobs_cannot_share_processes(jobs_and_data, local_ray):
    jobs, _ = jobs_and_data
    on_gpu = [with_resources(job, num_gpus=1) for job in jobs]
    (notice,) = RayExecutor(max_gpus_per_node=8).notices(on_gpu)
    assert notice.startswith("each GPU job gets a worker process of its own") and "a node has 8 GPUs" in notice
    assert RayExecutor(max_gpus_per_node=1).notices(on_gpu) == []
    assert RayExecutor(max_gpus_per_node=8).notices(jobs) == []  # no GPU jobs
    assert RayExecutor(off=frozenset({"reuse"}), max_gpus_per_node=None).notices(on_gpu) == []  # asked for


def test_a_job_lost_beyond_rays_retries_is_a_failure_the_next_run_retries(jobs_and_data, tmp_path, monkeypatch):
    """A worker killed (out of memory, node lost) more often than Ray retries gives one failed outcome,
    not an exception that would end the run with the other jobs."""
    import ray

    from jobs import run
    from jobs.store import Store

    def crashed(ref, timeout=None):
        raise ray.exceptions.WorkerCrashedError()

    monkeypatch.setattr(ray, "get", crashed)
    executor = RayExecutor.__new__(RayExecutor)  # no cluster needed to read a lost task's outcome
    executor.ray = ray
    job = jobs_and_data[0][0]
    outcome = executor._outcome(job, ref=None)
    assert outcome.output is None and outcome.failure.reason.startswith("WorkerCrashedError: The worker died")
    store = Store(str(tmp_path))
    store.job(job.id).start(job.describe())
    lines = ["2026-11-29T05:00:00+00:00 epoch 1/2 loss=0.69", "2026-11-29T05:00:01+00:00 epoch 2/2 loss=0.68"]
    store.job(job.id).write_checkpoint(a_checkpoint_of_state({"log": lines}))  # its process's last one
    run.persist(store, outcome)
    assert store.job(job.id).status()["state"] == "failed" and store.job(job.id).status()["retry"]
    log = Path(store.job(job.id).log_uri).read_text()
    assert log.startswith("\n".join(lines)) and "the lines above end at its last checkpoint" in log  # not Ray's alone
    assert run.pending_jobs([job], store, force=False)[0] == [job]  # the next run trains it again


def a_checkpoint_of_state(state: dict) -> bytes:
    """A checkpoint file holding ``state`` and no weights: what reading its log needs."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(checkpoint.STATE, json.dumps(state))
    return out.getvalue()
