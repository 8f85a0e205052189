"""Speed targets of the issues, measured end to end as a user meets them (not in unit tests).

    .venv/bin/python benchmarks/targets.py      (make bench-targets)

Each line: what was timed, the seconds it took, the target, and whether it was met. Uses a scratch
folder; needs nothing but the installed project (no data, no network). Exit code 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGIMEN = [sys.executable, "-m", "jobs"]


def timed(command: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - started, done


def gpu_refusal(scratch: Path) -> tuple[float, subprocess.CompletedProcess]:
    """A spec asking num_gpus: 0.25 against a running cluster with no GPU (issue 3: <= 10 s)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    try:
        spec = scratch / "gpu.yaml"
        spec.write_text(
            (ROOT / "specs" / "dropout.yaml").read_text() + "resources: {num_gpus: 0.25, gpu_memory_mb: 2048}\n"
        )
        run = [*REGIMEN, "run", str(spec), "--synthetic", "--address", cluster.address]
        return timed([*run, "--results", str(scratch / "gpu")])
    finally:
        cluster.shutdown()


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="regimen-bench-"))
    results = str(scratch / "results")
    demo = [*REGIMEN, "run", "specs", "--synthetic", "--max-epochs", "3", "--results", results]
    measurements = [
        ("regimen validate (six specs, every model built)", *timed([*REGIMEN, "validate"]), 10),
        ("make demo, first run (10 jobs on Ray, report)", *timed(demo), 180),
        ("make demo, again (0 jobs to train, report)", *timed(demo), 10),
        ("regimen report (six experiments)", *timed([*REGIMEN, "report", "--results", results]), 10),
        ("GPU request on a no-GPU cluster refused", *gpu_refusal(scratch), 10),
    ]
    missed = 0
    print(f"{'what':<50} {'seconds':>8} {'target':>7}  result")
    for what, seconds, done, target in measurements:
        ok = seconds <= target and done.returncode == (2 if "refused" in what else 0)
        missed += not ok
        print(f"{what:<50} {seconds:8.1f} {target:7.0f}  {'met' if ok else 'MISSED'} (exit {done.returncode})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
