"""Results stores for the report tests, written through the Store API with known, deterministic numbers.

No TensorFlow and no Ray: a finished job is a ``history.json`` and ``result.json`` made up here, shaped as
the worker writes them. Nothing depends on the clock, so a report of these stores is byte-for-byte stable.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from helpers import SPECS

from jobs.loading import load_experiments
from jobs.plan import expand
from jobs.run import RunOptions, manifest
from jobs.spec import Experiment
from jobs.store import Store

PLANNED = "2025-01-02T03:04:05+00:00"
ENVIRONMENT = {
    "host": "fixture-host",
    "platform": "Linux-fixture",
    "python": "3.11.2",
    "tensorflow": "2.21.0",
    "precision": "float32",
    "keras": "3.12.0",
    "numpy": "2.4.6",
    "ray": "2.60.0",
    "num_cpus": 1,
    "num_gpus": 0,
    "device": "CPU",
}


def imdb_experiment(name: str, variants: dict[str, dict], claims: list[dict], seeds: int = 1) -> Experiment:
    """A small IMDB experiment; ``variants`` maps each variant name to the numbers the seed printed."""
    layers = [
        {"kind": "dense", "units": 16, "activation": "relu"},
        {"kind": "dense", "units": 1, "activation": "sigmoid"},
    ]
    return Experiment.model_validate(
        {
            "name": name,
            "title": name.capitalize(),
            "question": f"Does the {name} experiment show what it claims?",
            "dataset": {"name": "imdb", "num_words": 100},
            "training": {
                "epochs": 6,
                "batch_size": 500,
                "loss": "binary_crossentropy",
                "metrics": ["accuracy", "binary_crossentropy"],
            },
            "variants": [{"name": v, "layers": layers, "seed_printed": printed} for v, printed in variants.items()],
            "seeds": seeds,
            "headline_metric": "binary_crossentropy",
            "claims": claims,
        }
    )


def fixture_id(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def plan(
    store: Store,
    experiment: Experiment,
    seeds: int,
    synthetic: bool = False,
    max_epochs: int | None = None,
    ids: dict[tuple[str, int], str] | None = None,
) -> dict[tuple[str, int], str]:
    """Write the experiment's manifest; returns (variant, seed) -> job id (``ids`` overrides, to share jobs)."""
    ids = dict(ids or {})
    for variant in experiment.variants:
        for seed in range(seeds):
            ids.setdefault((variant.name, seed), fixture_id(experiment.name, variant.name, seed))
    store.write_experiment(
        experiment.name,
        {
            "experiment": experiment.model_dump(mode="json"),
            "spec_file": f"specs/{experiment.name}.yaml",
            "planned": PLANNED,
            "run": {"synthetic": synthetic, "max_epochs": max_epochs, "seeds": seeds},
            "jobs": [{"variant": v, "seed": s, "job_id": j} for (v, s), j in ids.items()],
        },
    )
    return ids


def curves(metrics: tuple[str, ...], epochs: int, level: float, overfit: float, jitter: float) -> dict:
    """A Keras-shaped history: cross-entropy falling from ``level`` (training) and turning back up with
    ``overfit`` per epoch (validation); accuracy mirrors it."""
    history: dict[str, list[float]] = {}
    for e in range(1, epochs + 1):
        train = level * (0.55 + 0.45 * math.exp(-e / 3)) + jitter - 0.002 * e
        val = level * (0.6 + 0.4 * math.exp(-e / 3)) + jitter + overfit * e
        for prefix, ce in (("", train), ("val_", val)):
            values = {"loss": ce + 0.01, "accuracy": max(0.0, min(1.0, 1 - 0.5 * ce))}
            values.update({m: ce for m in metrics if m.endswith("crossentropy")})
            for key in ("loss", *metrics):
                history.setdefault(prefix + key, []).append(round(values[key], 6))
    return history


def finish(
    store: Store,
    job_id: str,
    history: dict,
    *,
    params: int = 1000,
    epochs: int | None = None,
    requested_epochs: int | None = None,
    batch_size: int = 500,
    synthetic: bool = False,
    source: str = "imdb.npz",
    seconds: float = 2.0,
    environment: dict | None = None,
    trained: tuple[str, str] = ("2025-01-02T03:05:00+00:00", "2025-01-02T03:09:00+00:00"),
) -> None:
    """Store a finished job whose test metrics are the last validation values of ``history``."""
    run = len(history["loss"])
    test = {k.removeprefix("val_"): v[-1] for k, v in history.items() if k.startswith("val_")}
    result = {
        "job_id": job_id,
        "test": test,
        "params": params,
        "epochs_run": run,
        "epochs": epochs or run,
        "requested_epochs": requested_epochs or epochs or run,
        "epochs_capped": (epochs or run) < (requested_epochs or epochs or run),
        "batch_size": batch_size,
        "data": {"source": source, "synthetic": synthetic, "train": 25000, "test": 25000},
        "timings": {
            "started": trained[0],
            "finished": trained[1],
            "fit_s": seconds,
            "training_s": seconds,
            "evaluate_s": 0.1,
            "total_s": seconds + 0.2,
            "seconds_per_epoch": round(seconds / run, 4),
        },
        "environment": environment or ENVIRONMENT,
    }
    record = store.job(job_id)
    record.start({"id": job_id})
    record.finish(history, result, log=f"job {job_id} finished\n")


def fail(store: Store, job_id: str, error: str, history: dict | None = None) -> None:
    record = store.job(job_id)
    record.start({"id": job_id})
    record.fail(error, f"Traceback (most recent call last):\n  ...\n{error}\n", log="job failed", history=history)


def running(store: Store, job_id: str) -> None:
    """A job that started and has not finished, with a fixed timestamp (``start`` would write the clock)."""
    store.write_json(store.job(job_id).file("status.json"), {"state": "running", "attempt": 1, "updated": PLANNED})


def golden_store(root: Path) -> Store:
    """Two experiments covering every case the report shows: a paired comparison over three seeds, a
    one-seed comparison, a threshold, a job shared by two experiments, failed, running and missing jobs,
    synthetic data and a capped variant."""
    store = Store(str(root))
    reg = imdb_experiment(
        "reg",
        {"basic": {"binary_crossentropy": 0.632}, "penalty": {"binary_crossentropy": 0.575}},
        [{"variant": "penalty", "metric": "binary_crossentropy", "lower_than": "basic"}],
        seeds=3,
    )
    ids = plan(store, reg, seeds=3, synthetic=True, max_epochs=4)
    for seed in range(3):
        for variant, level, overfit in (("basic", 0.70, 0.02), ("penalty", 0.62, 0.004)):
            jitter = 0.01 * ((seed * 7 + len(variant)) % 5 - 2)
            history = curves(reg.training.metrics, 4, level, overfit, jitter)
            # one seed after another, from 03:04 to 03:12: the report's "Trained" spans the first start to the last end
            trained = (f"2025-01-02T03:0{4 + 2 * seed}:00+00:00", f"2025-01-02T03:{8 + 2 * seed:02}:00+00:00")
            finish(
                store,
                ids[variant, seed],
                history,
                params=1633,
                epochs=4,
                requested_epochs=6,
                synthetic=True,
                trained=trained,
            )

    one = imdb_experiment(
        "one",
        {"basic": {"binary_crossentropy": 0.632}, "wide": {}, "deep": {}},
        [
            {"variant": "wide", "metric": "binary_crossentropy", "lower_than": "basic"},
            {"variant": "basic", "metric": "accuracy", "at_least": 0.6},
            {"variant": "deep", "metric": "binary_crossentropy", "at_most": 0.5},
        ],
    )
    shared = {("basic", 0): ids["basic", 0]}  # the same model and seed as reg's basic: one job
    one_ids = plan(store, one, seeds=2, synthetic=True, max_epochs=4, ids=shared)
    history = curves(one.training.metrics, 4, 0.66, 0.01, 0.0)
    finish(store, one_ids["wide", 0], history, params=3265, epochs=4, requested_epochs=6, synthetic=True)
    fail(store, one_ids["wide", 1], "Diverged: diverged at epoch 3: loss is nan", history={"loss": [0.7, 0.6]})
    running(store, one_ids["basic", 1])
    finish(
        store,
        one_ids["deep", 0],
        curves(one.training.metrics, 4, 0.8, 0.0, 0.0),
        params=2000,
        epochs=4,
        requested_epochs=6,
        synthetic=True,
    )
    # one_ids["deep", 1] never started
    return store


def suite_store(root: Path, seeds: int = 3, synthetic: bool = True, precision: str = "float32") -> Store:
    """The six built-in experiments, every job finished with full-length histories, as ``make demo`` leaves
    them with ``--seeds`` seeds; the numbers go the way the seed document's did."""
    loaded, errors = load_experiments([SPECS])
    assert not errors, errors
    experiments = [item.experiment for item in loaded]
    store = Store(str(root))
    jobs = expand(experiments, seeds=seeds, synthetic=synthetic, precision=precision)
    levels = {"basic": 0.68, "overfit": 0.75, "l1": 0.6, "l2": 0.6, "dropout": 0.6, "bn": 0.2, "develop": 0.25}
    for job in jobs:
        use = job.uses[0]
        level = levels[use.variant] * (0.3 if job.dataset.name != "imdb" else 1)
        overfit = 0.02 if use.variant == "overfit" else 0.001
        jitter = 0.005 * ((job.seed * 7 + len(use.variant)) % 5 - 2)
        history = curves(job.training.metrics, job.training.epochs, level, overfit, jitter)
        finish(
            store,
            job.id,
            history,
            epochs=job.training.epochs,
            requested_epochs=job.requested_epochs,
            batch_size=job.training.batch_size,
            synthetic=synthetic,
            source="synthetic" if synthetic else "real",
            seconds=0.5 * job.training.epochs,
            environment={**ENVIRONMENT, "precision": precision},
        )
    options = RunOptions(synthetic=synthetic, seeds=seeds, precision=precision)
    for order, item in enumerate(loaded):  # the manifests exactly as `regimen run` writes them
        store.write_experiment(item.experiment.name, manifest(item, order, jobs, options))
    return store
