"""Read the results store into plain data: the only module of the report that touches the store.

Nothing here raises for a bad entry. An unreadable manifest or job file becomes a ``corrupt`` entry
carrying the reason, so that one broken file costs one row of the report, not the report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import ValidationError

from jobs.spec import Experiment
from jobs.store import Store, StoreCorrupt, StoredRunOptions
from jobs.words import count, first_line


@dataclass(frozen=True)
class Run:
    """One planned (variant, seed) of an experiment and what the store holds for its job."""

    variant: str
    seed: int
    job_id: str
    state: str  # done, failed, running, interrupted, missing or corrupt; only done runs carry numbers
    log_uri: str = ""
    error: str = ""
    result: dict | None = None
    history: dict | None = None


@dataclass(frozen=True)
class ExperimentRuns:
    name: str
    experiment: Experiment | None  # None when the manifest is unreadable
    spec_file: str = ""
    planned: str = ""
    options: dict | None = None  # the manifest's "run": synthetic, max_epochs, seeds
    notes: tuple[str, ...] = ()  # what the run that planned it left out of the report (jobs.run.replaced_in_report)
    runs: tuple[Run, ...] = ()
    error: str = ""
    order: int = 1_000_000  # position in the run that planned it (suite order); unknown ones go last


@dataclass(frozen=True)
class Collected:
    store_uri: str
    experiments: tuple[ExperimentRuns, ...]


def collect(store: Store) -> Collected:
    """Every experiment of ``store`` with each planned run's state, result and history."""
    jobs: dict[str, tuple] = {}  # job id -> read once: l1's and l2's basic are one job
    experiments = []
    for name in store.experiment_names():
        try:
            manifest = store.read_experiment(name) or {}
            if not isinstance(manifest, dict):
                raise ValueError(f"manifest is a JSON {type(manifest).__name__}, not an object")
            experiment = Experiment.model_validate(manifest["experiment"])
            planned = [(str(j["variant"]), int(j["seed"]), str(j["job_id"])) for j in manifest.get("jobs", [])]
            notes = manifest.get("report_notes")  # manifests written before it existed have none
            entry = ExperimentRuns(
                name,
                experiment,
                spec_file=str(manifest.get("spec_file", "")),
                planned=str(manifest.get("planned", "")),
                options=StoredRunOptions.model_validate(manifest.get("run") or {}).model_dump(),
                notes=tuple(map(str, notes)) if isinstance(notes, list) else (),
                order=int(manifest.get("order", 1_000_000)),
            )
        except (StoreCorrupt, ValidationError, KeyError, TypeError, ValueError) as error:
            experiments.append(ExperimentRuns(name, None, error=_reason(error)))
            continue
        runs = []
        for variant, seed, job_id in planned:
            if job_id not in jobs:
                jobs[job_id] = _read_job(store, job_id)
            runs.append(Run(variant, seed, job_id, *jobs[job_id]))
        experiments.append(replace(entry, runs=tuple(runs)))
    return Collected(store.uri, tuple(sorted(experiments, key=lambda e: (e.order, e.name))))


def _read_job(store: Store, job_id: str) -> tuple[str, str, str, dict | None, dict | None]:
    """(state, log location, error, result, history) of one job."""
    try:
        record = store.job(job_id)
    except ValueError as error:
        return "corrupt", "", str(error), None, None
    state, status, why, result, history = record.read()
    if state == "corrupt":
        return "corrupt", record.log_uri, why or "status.json says corrupt", None, None
    if state == "done":  # only a finished job's numbers are reported
        return state, record.log_uri, "", result, history
    error = str(status.get("error", "")) if status else "never started"
    if state in ("running", "interrupted"):
        stored = len(record.resumable_epochs().get("loss", []))
        if state == "interrupted" and not stored:  # stopped before its first epoch ended, or before it began
            error = f"stopped before any epoch was stored (last update {status.get('updated')}); the next run starts it"
        else:
            epochs = count(stored, "epoch")
            error = f"attempt {status.get('attempt', '?')}, {epochs} stored, last update {status.get('updated')}"
            error += "; the next run resumes it" if state == "interrupted" else ""
    log = record.log_uri if store.fs.exists(record.file("log.txt")) else ""  # a job that never ended has none
    return state, log, error, None, None


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"manifest lacks {error}"
    if isinstance(error, ValidationError) and error.title == StoredRunOptions.__name__:
        first = error.errors()[0]
        return f"manifest's {'.'.join(map(str, ('run', *first['loc'])))}: {first['msg']}"
    if isinstance(error, ValidationError):
        return f"manifest's experiment is not a valid spec ({error.error_count()} errors)"
    return first_line(str(error)) or type(error).__name__
