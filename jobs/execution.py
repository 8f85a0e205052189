"""How a job runs fast on what it was given, without changing what it computes. Pure.

Each lever here was measured on the built-in suite and kept because it helped (``BENCHMARKS.md``,
``benchmarks/levers.py``); ``regimen run --off LEVER`` turns one off, which is how it is measured. Levers
measured and not kept — XLA on CPU, the whole test set as one validation batch, a ``tf.data`` pipeline
instead of Keras' own adapter for numpy arrays — are in ``BENCHMARKS.md`` with their numbers. None of
them is part of a job's identity: they change how fast a result comes, not the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jobs.data import Arrays
from jobs.plan import Job
from jobs.spec import parameter_count

#: name -> what turning it off does (``regimen run --off NAME``)
LEVERS = {
    "steps": "one Python call per batch instead of one per epoch (Keras steps_per_execution=1)",
    "reuse": "a fresh worker process (and Keras backend import) for every job",
    "shared-data": "every job gets its own copy of its dataset instead of one shared object in Ray's store",
    "order": "jobs dispatched in spec order instead of the longest first",
}


class UnknownLever(ValueError):
    pass


def levers_off(names: list[str]) -> frozenset[str]:
    """Validated lever names; an unknown one raises with the valid choices."""
    unknown = [name for name in names if name not in LEVERS]
    if unknown:
        raise UnknownLever(f"unknown lever {unknown[0]!r}; expected one of: {', '.join(LEVERS)}")
    return frozenset(names)


@dataclass(frozen=True)
class Execution:
    """The settings one job trains with."""

    threads: int
    steps_per_execution: int

    def describe(self) -> dict:
        return dict(self.__dict__)


def threads_for(num_cpus: float) -> int:
    """TensorFlow's intra- and inter-op threads for a task holding ``num_cpus`` CPUs (JAX has no such
    setting: ``worker.configure_jax``)."""
    return max(1, math.floor(num_cpus))


def process_env(job: Job) -> dict[str, str]:
    """The environment a worker process for ``job`` starts with, and so the key under which Ray reuses
    it: a process keeps the Keras backend, TensorFlow's thread count and the GPU share (with its memory
    cap) of its first job. JAX has no thread setting, so JAX jobs asking different CPUs share processes.
    The ``REGIMEN_*`` variables are read by nothing; they only keep those processes apart."""
    resources = job.resources
    env = {"KERAS_BACKEND": job.backend}
    if job.backend == "tensorflow":
        env["REGIMEN_THREADS"] = str(threads_for(resources.num_cpus))
        # glibc gives threads that allocate at once heaps of their own (up to 8 per core), and a fit's
        # input-pipeline threads take each batch from whichever: a worker's memory grew every epoch
        # (Fashion-MNIST: 1 121 MiB after the first, 1 509 after the twelfth) and was not given back. With
        # one heap it stays flat (1 080, then 1 102) at the same speed. JAX's stays flat either way, and it
        # ran 5-10 % slower with one. BENCHMARKS.md, "One glibc heap". glibc reads it as a process starts.
        env["MALLOC_ARENA_MAX"] = "1"
    if resources.num_gpus > 0:
        cap = resources.memory_cap_mb
        env["REGIMEN_GPU_SHARE"] = f"{resources.num_gpus:g} GPU" + (f", {cap} MB" if cap else "")
    return env


def gpu_processes_unshareable(jobs: list[Job], max_gpus_per_node: float | None) -> str | None:
    """Why this run's GPU jobs may not share worker processes, or None where they may (which saves the
    backend's start per job: 1.5-1.9x on the suite, ``BENCHMARKS.md``).

    They may only where every node is known to have at most one GPU (``max_gpus_per_node``; None:
    unknown): a backend sets up the GPU Ray handed its first job and a process keeps it, so on a node
    with several GPUs Ray could hand the next job another. And only when every GPU job of the run needs
    the same process (``process_env``): an idle process keeps the GPU memory it took, which Ray counts as
    free, so idle processes of one kind would take memory from jobs of another."""
    kinds = {tuple(sorted(process_env(job).items())) for job in jobs if job.resources.num_gpus > 0}
    if not kinds:
        return None
    if max_gpus_per_node is None:
        return (
            "the cluster's nodes are unknown (its autoscaler publishes no node types), so one may have several GPUs; "
            "--gpus-per-node 1 says none has more than one"
        )
    if max_gpus_per_node > 1:
        return f"a node has {max_gpus_per_node:g} GPUs, and a process keeps the GPU it started on"
    if len(kinds) > 1:
        return (
            "the run's GPU jobs differ in GPU share, cap, backend or threads, and an idle process keeps its GPU memory"
        )
    return None


def needs_fresh_process(job: Job, off: frozenset[str], share_gpu_processes: bool) -> bool:
    """Whether ``job`` must run in a worker process of its own rather than one an earlier job started."""
    return "reuse" in off or (job.resources.num_gpus > 0 and not share_gpu_processes)


def execution_for(job: Job, train_rows: int, off: frozenset[str] = frozenset()) -> Execution:
    """One Python call per epoch: Keras runs all of an epoch's steps inside one compiled loop."""
    steps = max(1, math.ceil(train_rows / job.training.batch_size))
    return Execution(
        threads=threads_for(job.resources.num_cpus),
        steps_per_execution=1 if "steps" in off else steps,
    )


def epoch_rows(job: Job, train_total: int, test_total: int) -> tuple[int, int]:
    """(examples trained on, examples validated on) each epoch, of a training set of ``train_total`` and a
    test set of ``test_total``: the seed validates on the test set; a held-out split takes the end of the
    training set instead."""
    if job.training.validation == "test":
        return train_total, test_total
    held_out = job.training.validation.rows(train_total)
    return train_total - held_out, held_out


def fit_splits(job: Job, data: Arrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) for ``fit``: the test set validates, as in the seed; a held-out
    split trains on the training set's first rows and validates on the rest, as :func:`epoch_rows` counts
    them, so the test set stays unseen until the final evaluation."""
    if job.training.validation == "test":
        return data.x_train, data.y_train, data.x_test, data.y_test
    cut, _ = epoch_rows(job, len(data.x_train), len(data.x_test))
    return data.x_train[:cut], data.y_train[:cut], data.x_train[cut:], data.y_train[cut:]


def estimated_flops(job: Job, train_rows: int, validation_rows: int) -> float:
    """Floating-point operations of the whole job: 6 per parameter per training example (forward and
    backward), 2 per parameter per validation example, every epoch. Orders jobs longest first."""
    per_epoch = 6 * train_rows + 2 * validation_rows
    return float(parameter_count(job.dataset, job.layers)) * per_epoch * job.training.epochs
