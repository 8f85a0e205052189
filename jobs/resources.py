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
) -> Feasibility:
    """Jobs every node is too small for are errors — except GPU requests on a local machine with no GPU,
    which run on CPU after a notice unless ``require_gpu``. ``native_bfloat16``: whether this machine's CPU
    multiplies bfloat16 natively (``cpus.native_bfloat16``); when it does not, local CPU jobs in reduced
    precision get a notice that they will be slower, not faster."""
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
    for job in jobs:
        if not any(fits(job, node) for node in nodes):
            errors.append(
                f"job {job.label} ({job.id}) asks for num_cpus={job.resources.num_cpus:g}, "
                f"num_gpus={job.resources.num_gpus:g}, which no node offers ({describe_nodes(nodes)})"
            )
    return Feasibility(jobs, notices, errors)
