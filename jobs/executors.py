"""Executors: one interface, two ways to run jobs — Ray tasks, or in this process (tests, debugging).

``run`` yields an :class:`Outcome` per job in completion order and calls ``on_progress`` with every
started job's latest epoch as the jobs report them. Ray's executor puts each dataset in its object store once
and every job maps it, unless the ``shared-data`` lever is off (``--off shared-data``: a copy per job).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from jobs.data import Arrays
from jobs.execution import epoch_rows, estimated_flops, gpu_processes_unshareable, needs_fresh_process, process_env
from jobs.plan import Job, data_key
from jobs.words import error_line
from jobs.worker import JobFailed, train

#: Every task's worker process keeps TensorFlow's C++ log and Python's warnings out of its log file. Given
#: per task, not to ``ray.init``: a job submitted with env_vars of its own would conflict with those there.
QUIET_WORKERS = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}


def worker_env(job: Job) -> dict[str, str]:
    """The environment Ray starts ``job``'s worker process with."""
    return {**QUIET_WORKERS, **process_env(job)}


#: Ray retries a task this many times after a system failure (node died, worker killed, preemption).
#: Exceptions raised by the job itself are results, never retried.
SYSTEM_RETRIES = 3
#: How long a cancelled run waits for its tasks' processes to end before it lets go of Ray
CANCEL_WAIT_S = 5


@dataclass(frozen=True)
class Outcome:
    job: Job
    output: dict | None = None  # {"history", "result", "log"} when the job finished
    failure: JobFailed | None = None


class ProgressBoard:
    """The latest epoch of every job that has started, as reported by the jobs themselves (finished ones
    stay: the driver's progress view tells them apart)."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}

    def update(self, job_id: str, epoch: int, epochs: int, logs: dict) -> None:
        self.jobs[job_id] = {"epoch": epoch, "epochs": epochs, "logs": logs}

    def snapshot(self) -> dict[str, dict]:
        return dict(self.jobs)


#: Receives job id -> {"epoch", "epochs", "logs"} for every job that has started.
OnProgress = Callable[[dict[str, dict]], None]


class Executor(ABC):
    @abstractmethod
    def run(
        self, jobs: list[Job], datasets: dict[str, Arrays], store_uri: str, on_progress: OnProgress | None = None
    ) -> Iterator[Outcome]:
        """Run every job; yield each outcome as soon as it is known."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop jobs still running or pending (Ctrl-C), and let go of whatever runs them."""

    def notices(self, jobs: list[Job]) -> list[str]:
        """What the user should know, before ``jobs`` run, about how this executor will run them."""
        return []


def longest_first(jobs: list[Job], datasets: dict[str, Arrays]) -> list[Job]:
    """Jobs by estimated work, largest first: on a few cores the run then ends when the longest job
    does, not after a long job started last."""

    def work(job: Job) -> float:
        data = datasets[data_key(job.dataset, job.synthetic)]
        return estimated_flops(job, *epoch_rows(job, len(data.x_train), len(data.x_test)))

    return sorted(jobs, key=work, reverse=True)


class InProcessExecutor(Executor):
    """Runs jobs one after another in this process: the same contract as Ray, nothing distributed."""

    def __init__(self, off: frozenset[str] = frozenset()):
        self.board = ProgressBoard()
        self.off = off

    def run(self, jobs, datasets, store_uri, on_progress=None):
        def report(*args):
            self.board.update(*args)
            if on_progress is not None:
                on_progress(self.board.snapshot())

        for job in jobs:
            report(job.id, 0, job.training.epochs, {})
            try:
                data = datasets[data_key(job.dataset, job.synthetic)]
                yield Outcome(job, output=train(job, data, store_uri, report, self.off))
            except JobFailed as failure:
                yield Outcome(job, failure=failure)

    def cancel(self):
        """Nothing to do: jobs run in this thread, so the interrupt itself stopped the current one."""


def _train_task(job: Job, data: Arrays, store_uri: str, board, off: frozenset[str]) -> dict:
    """The Ray task body: tell the board the job started, then train."""
    board.update.remote(job.id, 0, job.training.epochs, {})
    return train(job, data, store_uri, lambda *args: board.update.remote(*args), off)


class RayExecutor(Executor):
    """One Ray task per job with the job's CPU/GPU request; results gathered with ``ray.wait``.

    Worker processes are reused, so the backend is imported once per process, not once per job. But Keras
    fixes its backend, and the backend its threads, visible GPUs and memory cap, when they start, so a
    process may only serve jobs that need the same ones: jobs carry those as environment variables, and Ray
    reuses a process only for tasks with the same runtime environment. GPU jobs share processes only
    where that is safe (``execution.gpu_processes_unshareable``: known single-GPU nodes, one kind of GPU
    job in the run); otherwise each gets a fresh process (``max_calls=1``). ``max_gpus_per_node``: the
    most GPUs any node has or may get; None where unknown.
    """

    def __init__(
        self, poll_seconds: float = 0.5, off: frozenset[str] = frozenset(), max_gpus_per_node: float | None = None
    ):
        import ray

        self.ray = ray
        self.poll_seconds = poll_seconds
        self.off = off
        self.max_gpus_per_node = max_gpus_per_node
        self.board = None  # an actor, made when jobs run: a run refused before then schedules nothing
        # GPUs come per task through .options(): Ray gives max_calls=1 only to a function declared with GPUs
        self.reusing_task = ray.remote(_train_task)
        self.fresh_process_task = ray.remote(max_calls=1)(_train_task)  # Ray allows max_calls only here
        self.pending: dict = {}

    def notices(self, jobs):
        unshareable = None if "reuse" in self.off else gpu_processes_unshareable(jobs, self.max_gpus_per_node)
        if unshareable is None:
            return []
        return [f"each GPU job gets a worker process of its own, which is slower than sharing them: {unshareable}"]

    def _task(self, job: Job, share_gpu_processes: bool):
        resources = job.resources
        task = self.fresh_process_task if needs_fresh_process(job, self.off, share_gpu_processes) else self.reusing_task
        return task.options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            runtime_env={"env_vars": worker_env(job)},
            max_retries=SYSTEM_RETRIES,
            retry_exceptions=False,
            name=f"regimen:{job.label}",
        )

    def run(self, jobs, datasets, store_uri, on_progress=None):
        ray = self.ray
        self.board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        if "order" not in self.off:
            jobs = longest_first(jobs, datasets)
        # once per dataset, not per job; with the lever off each task's argument is serialised again
        shared = "shared-data" not in self.off
        refs = {key: ray.put(arrays) if shared else arrays for key, arrays in datasets.items()}
        del datasets  # the driver's own copies: freed once they are in the object store
        share_gpu_processes = gpu_processes_unshareable(jobs, self.max_gpus_per_node) is None
        users = Counter(data_key(job.dataset, job.synthetic) for job in jobs)
        for job in jobs:
            task = self._task(job, share_gpu_processes)
            ref = task.remote(job, refs[data_key(job.dataset, job.synthetic)], store_uri, self.board, self.off)
            self.pending[ref] = job
        while self.pending:
            done, _ = ray.wait(list(self.pending), num_returns=1, timeout=self.poll_seconds)
            if on_progress is not None:
                self._report_progress(on_progress)
            for ref in done:
                job = self.pending.pop(ref)
                key = data_key(job.dataset, job.synthetic)
                users[key] -= 1
                if not users[key]:  # its last job is over: the object store can free the dataset
                    del refs[key]
                yield self._outcome(job, ref)

    def _outcome(self, job: Job, ref) -> Outcome:
        try:
            return Outcome(job, output=self.ray.get(ref))
        except self.ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(error.cause, JobFailed) else None
            if cause is not None:
                return Outcome(job, failure=cause)
            return Outcome(job, failure=JobFailed(_one_line(error), str(error), ""))
        except self.ray.exceptions.RayError as error:  # worker or node lost beyond the retries, OOM, cancelled
            # what happened comes first in Ray's own errors, its advice after (out of memory)
            return Outcome(job, failure=JobFailed(error_line(error, 300), str(error), ""))

    def _report_progress(self, on_progress: OnProgress) -> None:
        with contextlib.suppress(self.ray.exceptions.RayError):  # best effort; results never depend on it
            on_progress(self.ray.get(self.board.snapshot.remote(), timeout=5))

    def cancel(self):
        """Cancel every pending task, then disconnect now (a private Ray stops), rather than in Ray's exit
        handler, where a second Ctrl-C would print its traceback and leave Ray's processes running."""
        cancelled = list(self.pending)
        for ref in cancelled:
            self.ray.cancel(ref, force=True)
        # the kill is only sent: until its process ends, a task could still write its job's epochs and
        # checkpoint after the run has marked the job interrupted (and, under --force, dropped its attempt)
        with contextlib.suppress(Exception):  # a cluster that is gone has nothing left to wait for
            self.ray.wait(cancelled, num_returns=len(cancelled), timeout=CANCEL_WAIT_S)
        self.ray.shutdown()


def _one_line(error: Exception) -> str:
    """Ray's error's type and its message's last line: Ray puts the task's traceback first, the cause last."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300]
