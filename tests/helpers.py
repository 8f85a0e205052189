"""What several test modules share: the repository's paths, the CLI run as a user runs it, and jobs
with other resources."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def load_specs(*paths: Path):
    """The experiments of the spec files or folders ``paths`` (the six built-in ones by default), which
    must load without an error."""
    from jobs.loading import load_experiments

    loaded, errors = load_experiments(list(paths) or [SPECS])
    assert not errors, errors
    return [item.experiment for item in loaded]


def regimen(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m jobs ARGS`` from the repository root, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def smoke_run(
    results: Path, *extra: str, specs: tuple[str, ...] = ("specs/dropout.yaml",), env: dict | None = None
) -> subprocess.CompletedProcess:
    """A one-epoch synthetic run of ``specs`` into ``results``, without the report."""
    return regimen(
        "run", *specs, "--synthetic", "--max-epochs", "1", "--results", str(results), "--no-report", *extra, env=env
    )


def with_resources(job, **resources):
    """``job`` asking for other resources (``num_cpus``, ``num_gpus``, ``gpu_memory_mb``), same id."""
    return replace(job, resources=job.resources.model_copy(update=resources))
