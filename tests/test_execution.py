"""How jobs run fast: the rules of ``jobs/execution.py`` are pure functions of the job and its data."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import load_specs, regimen, with_resources

from jobs.data import Arrays
from jobs.execution import (
    LEVERS,
    UnknownLever,
    epoch_rows,
    execution_for,
    fit_splits,
    gpu_processes_unshareable,
    levers_off,
    needs_fresh_process,
    process_env,
)
from jobs.executors import RayExecutor, longest_first
from jobs.plan import data_key, expand
from jobs.spec import ROWS, HeldOut


@pytest.fixture(scope="module")
def suite_jobs():
    return {job.uses[0].experiment + "/" + job.uses[0].variant: job for job in expand(load_specs())}


def test_one_python_call_per_epoch(suite_jobs):
    steps = {
        name: execution_for(job, ROWS[job.dataset.name][0]).steps_per_execution for name, job in suite_jobs.items()
    }
    assert steps["overfitting/overfit"] == 25  # 25 000 reviews in batches of 1 000
    assert steps["dropout/basic"] == 50 and steps["batchnorm/bn"] == 120 and steps["fashion/develop"] == 60
    assert execution_for(suite_jobs["overfitting/overfit"], 24_001).steps_per_execution == 25  # a last, short batch


def test_tensorflow_threads_are_the_whole_cpus_a_job_asks_for_at_least_one(suite_jobs):
    job = suite_jobs["fashion/develop"]
    threads = [execution_for(with_resources(job, num_cpus=n), 60_000).threads for n in (1, 2.5, 0.5)]
    assert threads == [1, 2, 1]


def test_a_held_out_split_trains_on_the_rest_and_validates_on_it(suite_jobs):
    job = suite_jobs["fashion/develop"]
    assert epoch_rows(job, 60_000, 10_000) == (60_000, 10_000)  # the seed validates on the test set
    held_out = replace(job, training=job.training.model_copy(update={"validation": HeldOut(held_out=0.2)}))
    assert epoch_rows(held_out, 60_000, 10_000) == (48_000, 12_000)
    rows = np.arange(10)
    data = Arrays(rows, rows + 100, rows[:4] + 1000, rows[:4] + 2000, "rows")
    x_train, y_train, x_val, y_val = fit_splits(held_out, data)
    assert x_train.tolist() == list(range(8)) and y_train.tolist() == list(range(100, 108))
    assert x_val.tolist() == [8, 9] and y_val.tolist() == [108, 109]  # never the test set
    the_seed_s = (data.x_train, data.y_train, data.x_test, data.y_test)  # validation on the test set
    assert all(a is b for a, b in zip(fit_splits(job, data), the_seed_s, strict=True))


def test_each_lever_can_be_turned_off(suite_jobs):
    job = suite_jobs["overfitting/overfit"]
    assert execution_for(job, 25_000).steps_per_execution == 25
    assert execution_for(job, 25_000, levers_off(["steps"])).steps_per_execution == 1
    with pytest.raises(UnknownLever, match="expected one of: " + ", ".join(LEVERS)):
        levers_off(["steps", "turbo"])


def rows_only(jobs) -> dict:
    """Each job's dataset as arrays of its real row counts and no columns: what ordering jobs reads."""
    return {
        data_key(job.dataset, False): Arrays(
            np.empty((ROWS[job.dataset.name][0], 0)), None, np.empty((ROWS[job.dataset.name][1], 0)), None, "rows"
        )
        for job in jobs
    }


def test_the_longest_job_is_dispatched_first(suite_jobs):
    jobs = list(suite_jobs.values())
    order = [job.uses[0].experiment + "/" + job.uses[0].variant for job in longest_first(jobs, rows_only(jobs))]
    assert order[:2] == ["overfitting/overfit", "fashion/develop"]
    assert set(order[-2:]) == {"dropout/basic", "dropout/dropout"}  # the smallest models


class RecordingRay:
    """Stands in for the ``ray`` module under :class:`RayExecutor`: records what is put in the object
    store and what each task is given, in dispatch order, and finishes every task at once."""

    exceptions = SimpleNamespace(RayError=RuntimeError, RayTaskError=RuntimeError)

    def __init__(self):
        self.stored, self.dispatched = [], []

    def remote(self, **options):
        return lambda actor: SimpleNamespace(remote=lambda: SimpleNamespace(update=None))

    def put(self, value):
        self.stored.append(value)
        return ("ref", len(self.stored))

    def wait(self, refs, num_returns, timeout):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref, timeout=None):
        return {"task": ref}

    def task(self, process: str):
        def remote(job, data, store_uri, board, off):
            self.dispatched.append((job.uses[0].experiment + "/" + job.uses[0].variant, data, process))
            return len(self.dispatched)

        return SimpleNamespace(options=lambda **options: SimpleNamespace(remote=remote))


@pytest.mark.parametrize("off", [(), ("order",), ("shared-data",), ("reuse",)])
def test_the_ray_executor_dispatches_as_its_levers_say(suite_jobs, off):
    jobs = list(suite_jobs.values())  # spec order: overfitting's first, fashion's last
    datasets = rows_only(jobs)
    executor = RayExecutor(off=frozenset(off))
    executor.ray = ray = RecordingRay()
    executor.reusing_task, executor.fresh_process_task = ray.task("reused"), ray.task("fresh")
    outcomes = list(executor.run(jobs, datasets, "memory://unused"))
    assert len(outcomes) == len(jobs) and all(outcome.output for outcome in outcomes)
    order = [name for name, _, _ in ray.dispatched]
    expected = [job.uses[0].experiment + "/" + job.uses[0].variant for job in jobs]
    if "order" not in off:
        expected = [job.uses[0].experiment + "/" + job.uses[0].variant for job in longest_first(jobs, datasets)]
    assert order == expected and (order[1] == "fashion/develop") == ("order" not in off)
    if "shared-data" in off:  # every task is given the arrays themselves, serialised with it
        assert ray.stored == [] and {id(data) for _, data, _ in ray.dispatched} == {id(a) for a in datasets.values()}
    else:  # each dataset put in the object store once, and every task given its reference
        assert [id(v) for v in ray.stored] == [id(a) for a in datasets.values()]
        assert {data[0] for _, data, _ in ray.dispatched} == {"ref"}
    assert {process for _, _, process in ray.dispatched} == {"fresh" if "reuse" in off else "reused"}


def on_gpu(job, num_gpus, gpu_memory_mb=None):
    return with_resources(job, num_gpus=num_gpus, gpu_memory_mb=gpu_memory_mb)


def test_a_worker_process_serves_only_jobs_that_set_up_the_backend_alike(suite_jobs):
    job = suite_jobs["dropout/basic"]
    assert process_env(job) == {"KERAS_BACKEND": "tensorflow", "REGIMEN_THREADS": "1", "MALLOC_ARENA_MAX": "1"}
    envs = [process_env(on_gpu(job, *share)) for share in ((1,), (1, 4000), (0.25, 2048), (0.25, 4096), (0.5, 2048))]
    assert envs[0] == envs[1]  # a whole GPU is never capped
    assert len({tuple(sorted(env.items())) for env in [process_env(job), *envs[1:]]}) == 5
    assert process_env(on_gpu(job, 0.25, 2048)) == process_env(on_gpu(suite_jobs["l2/l2"], 0.25, 2048))
    # TensorFlow fixes its threads when it starts; JAX has none to fix
    assert process_env(with_resources(job, num_cpus=2)) != process_env(job)
    jax = replace(job, backend="jax")
    assert process_env(with_resources(jax, num_cpus=2)) == process_env(jax) == {"KERAS_BACKEND": "jax"}


def test_gpu_jobs_share_processes_only_on_known_single_gpu_nodes_and_of_one_kind(suite_jobs):
    quarter = [on_gpu(job, 0.25, 2048) for job in suite_jobs.values()]
    assert gpu_processes_unshareable(quarter, max_gpus_per_node=1) is None
    assert gpu_processes_unshareable([*quarter, suite_jobs["dropout/basic"]], max_gpus_per_node=1) is None
    assert gpu_processes_unshareable(list(suite_jobs.values()), max_gpus_per_node=None) is None  # no GPU jobs
    assert "a node has 4 GPUs" in gpu_processes_unshareable(quarter, max_gpus_per_node=4)
    assert "nodes are unknown" in gpu_processes_unshareable(quarter, max_gpus_per_node=None)
    # idle processes of one kind would hold GPU memory Ray promises to jobs of the other
    mixed = [*quarter, on_gpu(suite_jobs["l2/l2"], 1)]
    assert "differ in GPU share" in gpu_processes_unshareable(mixed, max_gpus_per_node=1)


def test_which_jobs_get_a_fresh_process(suite_jobs):
    cpu_job, gpu_job = suite_jobs["dropout/basic"], on_gpu(suite_jobs["dropout/basic"], 0.25, 2048)
    assert not needs_fresh_process(gpu_job, frozenset(), share_gpu_processes=True)
    assert needs_fresh_process(gpu_job, frozenset(), share_gpu_processes=False)
    assert not needs_fresh_process(cpu_job, frozenset(), share_gpu_processes=False)
    assert needs_fresh_process(cpu_job, levers_off(["reuse"]), share_gpu_processes=True)
    assert needs_fresh_process(gpu_job, levers_off(["reuse"]), share_gpu_processes=True)


def test_an_unknown_lever_is_one_line_and_exit_2():
    done = regimen("run", "specs/dropout.yaml", "--synthetic", "--off", "steps,turbo")
    assert done.returncode == 2
    assert "unknown lever 'turbo'; expected one of: steps, reuse" in done.stderr
    assert "Traceback" not in done.stderr
