"""Experiments -> jobs: one per variant and seed, identified by what changes the result, merged by id.

Pure: no Ray, no TensorFlow. The job id hashes the model, data, training, seed, backend and precision, not names,
so ``l1``'s and ``l2``'s identical ``basic`` are one job, trained once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from jobs.spec import FULL_PRECISION, Dataset, Experiment, Layer, Resources, Training

#: Bump when the training code changes what a job's result means; old results then no longer match.
JOB_FORMAT = 1


@dataclass(frozen=True)
class Use:
    """Where a job's result is used: one (experiment, variant, seed)."""

    experiment: str
    variant: str
    seed: int


@dataclass(frozen=True)
class Job:
    id: str
    dataset: Dataset
    layers: tuple[Layer, ...]
    training: Training  # resolved: experiment defaults + variant overrides, epochs capped
    seed: int
    synthetic: bool
    backend: str  # Keras 3 backend (spec.Backend)
    precision: str  # Keras dtype policy (spec.Precision)
    resources: Resources
    requested_epochs: int  # before --max-epochs
    uses: tuple[Use, ...] = field(default=())

    @property
    def label(self) -> str:
        first = self.uses[0]
        shared = ", ".join(f"{use.experiment}/{use.variant}" for use in self.uses[1:])
        more = f" (also {shared})" if shared else ""
        return f"{first.experiment}/{first.variant}/s{self.seed}{more}"

    @property
    def epochs_capped(self) -> bool:
        return self.training.epochs < self.requested_epochs

    def identity(self) -> dict:
        return job_identity(
            self.dataset, self.layers, self.training, self.seed, self.synthetic, self.backend, self.precision
        )

    def describe(self) -> dict:
        """Everything about the job as JSON: what it trains and where its result is used."""
        return {
            "id": self.id,
            **self.identity(),
            "precision": self.precision,
            "requested_epochs": self.requested_epochs,
            "resources": self.resources.model_dump(),
            "uses": [use.__dict__ for use in self.uses],
        }


def job_identity(
    dataset: Dataset,
    layers: tuple[Layer, ...],
    training: Training,
    seed: int,
    synthetic: bool,
    backend: str,
    precision: str,
) -> dict:
    """What the job's result depends on. Precision is named only when it is not float32, so that results
    stored before it was selectable keep their ids."""
    return {
        "format": JOB_FORMAT,
        "backend": backend,
        **({} if precision == FULL_PRECISION else {"precision": precision}),
        "dataset": dataset.model_dump(mode="json"),
        "data": "synthetic" if synthetic else "real",
        "layers": [layer.model_dump(mode="json") for layer in layers],
        "training": training.model_dump(mode="json"),
        "seed": seed,
    }


def job_id(identity: dict) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def seeds_of(experiment: Experiment, seeds: int | None) -> range:
    return range(seeds if seeds is not None else experiment.seeds)


def capped_epochs(epochs: int, max_epochs: int | None) -> int:
    """The epochs a job of ``epochs`` trains in a run given ``--max-epochs`` (None: no cap)."""
    return min(epochs, max_epochs or epochs)


def expand(
    experiments: list[Experiment],
    seeds: int | None = None,
    synthetic: bool = False,
    max_epochs: int | None = None,
    resources: dict | None = None,
    backend: str | None = None,
    precision: str | None = None,
) -> list[Job]:
    """Every (experiment, variant, seed) as a job, identical jobs merged into one with several uses.

    ``resources`` overrides fields of every spec's resources (e.g. ``{"num_gpus": 0.25}`` on a GPU cluster);
    like the rest of the resources, it does not change job ids. ``backend`` and ``precision`` override
    every spec's Keras backend and dtype policy; they do change them (other kernels, other roundings)."""
    by_id: dict[str, Job] = {}
    for experiment in experiments:
        requested = _resources(experiment, resources or {})
        for variant in experiment.variants:
            full = experiment.resolved_training(variant)
            training = full.model_copy(update={"epochs": capped_epochs(full.epochs, max_epochs)})
            keras_backend = backend or experiment.backend
            dtype_policy = precision or experiment.precision
            for seed in seeds_of(experiment, seeds):
                identity = job_identity(
                    experiment.dataset, variant.layers, training, seed, synthetic, keras_backend, dtype_policy
                )
                use = Use(experiment.name, variant.name, seed)
                jid = job_id(identity)
                if jid in by_id:
                    known = by_id[jid]
                    by_id[jid] = Job(
                        **{
                            **known.__dict__,
                            "uses": (*known.uses, use),
                            "resources": _larger(known.resources, requested),
                        }
                    )
                    continue
                by_id[jid] = Job(
                    jid,
                    experiment.dataset,
                    variant.layers,
                    training,
                    seed,
                    synthetic,
                    keras_backend,
                    dtype_policy,
                    requested,
                    full.epochs,
                    (use,),
                )
    return list(by_id.values())


class BadResources(ValueError):
    """Resource overrides that make an experiment's request invalid (e.g. a shared GPU with no memory cap)."""


def _resources(experiment: Experiment, overrides: dict) -> Resources:
    try:
        return Resources(**{**experiment.resources.model_dump(), **overrides})
    except ValidationError as invalid:
        given = ", ".join(f"{_flag(k)} {v:g}" for k, v in overrides.items())
        reason = invalid.errors()[0]["msg"].removeprefix("Value error, ")
        for name in Resources.model_fields:  # the reason in the words of the command line it answers
            reason = re.sub(rf"\b{name}\b", _flag(name), reason)
        raise BadResources(f"{given} for {experiment.name}: {reason}") from None


def _flag(resource: str) -> str:
    """The command-line option that overrides a resource field: ``gpu_memory_mb`` is ``--gpu-memory-mb``."""
    return "--" + resource.replace("_", "-")


def _larger(a: Resources, b: Resources) -> Resources:
    """The request that satisfies both experiments sharing a job."""
    return Resources(
        num_cpus=max(a.num_cpus, b.num_cpus),
        num_gpus=max(a.num_gpus, b.num_gpus),
        gpu_memory_mb=max(a.gpu_memory_mb or 0, b.gpu_memory_mb or 0) or None,
    )


def data_key(dataset: Dataset, synthetic: bool) -> str:
    """Jobs with the same data key share one loaded copy of the dataset."""
    return json.dumps([dataset.model_dump(mode="json"), synthetic], sort_keys=True)
