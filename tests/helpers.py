"""What several test modules share: the repository's paths, the CLI run as a user runs it, and jobs
with other resources."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def another_run_holding(results: Path) -> Iterator[subprocess.Popen]:
    """A process holding ``results`` as a running ``regimen run`` does (``Store.hold_for_run``) until the
    block ends, when it is killed (SIGKILL: as a crashed run ends)."""
    hold = "import sys, time; from jobs.store import Store; run = Store(sys.argv[1]).hold_for_run(); run.__enter__()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "; print('held', flush=True); time.sleep(600)", str(results)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
