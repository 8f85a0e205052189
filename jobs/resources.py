"""Can the cluster run what the jobs ask for? Decided before dispatch, from the nodes' resources.

Pure: takes the nodes' total resources (as ``ray.nodes()`` reports them) and returns the jobs to run,
notices and errors. Ray itself would leave an infeasible task pending forever with only a log warning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jobs.cpus import BFLOAT16_FLAGS
from jobs.plan import Job
from jobs.spec import FULL_PRECISION
from jobs.words import count


@dataclass(frozen=True)
class Feasibility:
    jobs: list[Job]
    notices: list[str]
    errors: list[str]


def describe_nodes(nodes: list[dict[str, float]]) -> str:
    if not nodes:
        return "no alive nodes"
    return "; ".join(
        f"node {i + 1}: CPU {node.get('CPU', 0):g}, GPU {node.get('GPU', 0):g}" for i, node in enumerate(nodes)
    )


def fits(job: Job, node: dict[str, float]) -> bool:
    return node.get("CPU", 0) >= job.resources.num_cpus and node.get("GPU", 0) >= job.resources.num_gpus


def check(
    jobs: list[Job],
    nodes: list[dict[str, float]],
    local: bool,
    require_gpu: bool = False,
    native_bfloat16: bool | None = None,
    side_by_side: bool = True,
    gpu_memory_total_mb: int | None = None,
) -> Feasibility:
    """Jobs every node is too small for are errors — except GPU requests on a local machine with no GPU,
    which run on CPU after a notice unless ``require_gpu``. ``native_bfloat16``: whether this machine's CPU
    multiplies bfloat16 natively (``cpus.native_bfloat16``); when it does not, local CPU jobs in reduced
    precision get a notice that they will be slower, not faster. ``side_by_side``: whether jobs may run at
    the same time (Ray), not one after another (``--in-process``). ``gpu_memory_total_mb``: the memory of
    this machine's GPU, where the run is local and has one (``gpus.gpu_total_mb``)."""
    notices: list[str] = []
    errors: list[str] = []
    has_gpu = any(node.get("GPU", 0) > 0 for node in nodes)
    wants_gpu = [job for job in jobs if job.resources.num_gpus > 0]
    if local and wants_gpu and not has_gpu:
        if require_gpu:
            errors.append(
                f"a GPU asked for by {count(len(wants_gpu), 'job')} (first: {wants_gpu[0].label}, "
                f"num_gpus={wants_gpu[0].resources.num_gpus:g}), and this machine has none (--require-gpu)"
            )
            return Feasibility([], notices, errors)
        notices.append(
            f"a GPU asked for by {count(len(wants_gpu), 'job')}, and this machine has none: running on CPU "
            "(--require-gpu refuses instead)"
        )
        jobs = [
            replace(job, resources=job.resources.model_copy(update={"num_gpus": 0, "gpu_memory_mb": None}))
            if job.resources.num_gpus > 0
            else job
            for job in jobs
        ]
    emulated = [job for job in jobs if job.precision != FULL_PRECISION and job.resources.num_gpus == 0]
    if local and native_bfloat16 is False and emulated:
        notices.append(
            f"{emulated[0].precision} for {count(len(emulated), 'job')}, but this CPU has no native bfloat16 "
            f"multiply (no {' / '.join(BFLOAT16_FLAGS)} flag): slower than in float32"
        )
    uncapped = [job for job in jobs if job.resources.gpu_memory_mb and job.resources.memory_cap_mb is None]
    if uncapped:
        asked = ", ".join(sorted({f"{job.resources.num_gpus:g}" for job in uncapped}))
        notices.append(
            f"gpu_memory_mb ignored for {count(len(uncapped), 'job')}: it caps the memory of a shared GPU "
            f"(0 < num_gpus < 1), and these ask num_gpus={asked}"
        )
    if gpu_memory_total_mb and side_by_side:  # one at a time (--in-process), each has the GPU to itself
        errors += overcommitted(jobs, gpu_memory_total_mb)
    jax_on_cpu = [job for job in jobs if job.backend == "jax" and job.resources.num_gpus == 0]
    cores = max((node.get("CPU", 0) for node in nodes), default=0)
    if side_by_side and len(jax_on_cpu) > 1 and any(job.resources.num_cpus < cores for job in jax_on_cpu):
        notices.append(
            f"{count(len(jax_on_cpu), 'JAX job')} on CPU: JAX uses every core of its node whatever num_cpus asks, "
            f"so jobs side by side share the cores; --num-cpus {cores:g} runs one at a time on each node"
        )
    by_request: dict[tuple[float, float], list[Job]] = {}
    for job in jobs:
        if not any(fits(job, node) for node in nodes):
            by_request.setdefault((job.resources.num_cpus, job.resources.num_gpus), []).append(job)
    for (cpus, gpus), unfit in by_request.items():
        errors.append(
            f"{asking(unfit)} for num_cpus={cpus:g}, num_gpus={gpus:g}, which no node offers ({describe_nodes(nodes)})"
        )
    return Feasibility(jobs, notices, errors)


def asking(jobs: list[Job]) -> str:
    """``2 jobs (dropout/basic/s0 and 1 more) ask``: who makes a request, to begin an error about it."""
    which = jobs[0].label + (f" and {len(jobs) - 1} more" if len(jobs) > 1 else "")
    return f"{count(len(jobs), 'job')} ({which}) {'asks' if len(jobs) == 1 else 'ask'}"


def overcommitted(jobs: list[Job], total_mb: int) -> list[str]:
    """Errors for jobs whose GPU memory cap is more than their share of the GPU's memory: Ray fills a GPU
    with shares up to one whole, so such jobs side by side would ask for more than it has, and fail one by
    one out of memory mid-run. Caps within their shares add up to the GPU's memory at most, but each
    process's CUDA context comes on top of its cap, so those can still run short: this finds only the
    certain cases."""
    by_request: dict[tuple[int, float], list[Job]] = {}
    for job in jobs:
        if (cap := job.resources.memory_cap_mb) and cap > job.resources.num_gpus * total_mb:
            by_request.setdefault((cap, job.resources.num_gpus), []).append(job)
    errors = []
    for (cap, share), over in by_request.items():
        errors.append(
            f"{asking(over)} for gpu_memory_mb={cap} at num_gpus={share:g}: Ray puts jobs on this machine's GPU, "
            f"{total_mb} MB, until their shares make one whole, so that share's cap is at most "
            f"{int(share * total_mb)} MB; lower gpu_memory_mb or raise num_gpus"
        )
    return errors
