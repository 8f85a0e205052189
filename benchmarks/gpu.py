"""The GPU path: the built-in suite on one GPU, one job at a time and packed several to a GPU.

    python benchmarks/gpu.py [--backend jax] [--precision float32] [--fractions 0.1,0.25,1]
                             [--gpu-memory-mb 2048] [--off LEVER[,LEVER]] [--data-dir DIR] [--max-epochs N]
                             [--out DIR]

For each fraction f: ``regimen run specs --num-gpus f`` (with ``--gpu-memory-mb`` when f < 1, which
packs 1/f jobs on the GPU) on a fresh store, SYNTHETIC data at the real shapes unless --data-dir is
given, while ``nvidia-smi`` is read twice a second for the GPU memory each process holds. Prints, and
writes as JSON (``bench/results/gpu-*.json``): the wall time of each fraction, and each job's device,
memory cap as the backend reports it, worker process and that process's peak GPU memory (over every job
it ran), seconds per epoch and test metrics. ``--off`` is passed to ``regimen run`` (``--off reuse``: a
fresh worker process per GPU job).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import get_args

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import stamped, this_machine  # noqa: E402
from jobs.gpus import nvidia_smi  # noqa: E402
from jobs.spec import FULL_PRECISION, Backend, Precision  # noqa: E402
from jobs.store import Store  # noqa: E402


class GpuMemory:
    """Samples every process's GPU memory (MiB) in a thread: the peak of each and of their sum."""

    def __init__(self, every: float = 0.5):
        self.every, self.per_process, self.total_peak = every, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            try:
                rows = nvidia_smi("--query-compute-apps=pid,used_memory")
            except (OSError, subprocess.SubprocessError):  # a missed sample, not a failed run
                rows = []
            used = {int(pid): int(mib) for pid, mib in rows if pid.isdigit() and mib.isdigit()}
            for pid, mib in used.items():
                self.per_process[pid] = max(self.per_process.get(pid, 0), mib)
            self.total_peak = max(self.total_peak, sum(used.values()))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_suite(fraction: float, args, results: Path) -> dict:
    command = [sys.executable, "-m", "jobs", "run", "specs", "--results", str(results), "--no-report"]
    command += ["--backend", args.backend, "--precision", args.precision, "--num-gpus", f"{fraction:g}"]
    if fraction < 1:
        command += ["--gpu-memory-mb", str(args.gpu_memory_mb)]
    command += ["--data-dir", str(args.data_dir)] if args.data_dir else ["--synthetic"]
    command += ["--max-epochs", str(args.max_epochs)] if args.max_epochs else []
    command += ["--off", args.off] if args.off else []
    print("$", " ".join(command), flush=True)
    with GpuMemory() as memory:
        clock = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - clock
    print(done.stdout[-2000:], done.stderr[-3000:] if done.returncode else "", flush=True)
    store = Store(str(results))
    jobs = [job_summary(store.job(job_id), memory.per_process) for job_id in store.job_ids()]
    return {
        "fraction": fraction,
        "gpu_memory_mb": args.gpu_memory_mb if fraction < 1 else None,
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        "gpu_memory_peak_total_mib": memory.total_peak,
        "jobs": jobs,
    }


def job_summary(record, gpu_peaks: dict[int, int]) -> dict:
    use = record.spec()["uses"][0]
    name = f"{use['experiment']}/{use['variant']}"
    result = record.result()
    if result is None:
        status = record.status() or {}
        return {"job": name, "state": status.get("state"), "error": status.get("error")}
    environment = result["environment"]
    return {
        "job": name,
        "state": "done",
        "device": environment.get("device"),
        "gpu_memory_cap_mb": environment.get("gpu_memory_mb"),
        "gpu_memory_peak_mib": gpu_peaks.get(environment.get("pid")),
        "pid": environment.get("pid"),
        "jobs_in_process": environment.get("jobs_in_process"),
        "epochs": result["epochs_run"],
        "seconds_per_epoch": result["timings"]["seconds_per_epoch"],
        "total_s": result["timings"]["total_s"],
        "test": result["test"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax", choices=get_args(Backend))
    parser.add_argument("--precision", default=FULL_PRECISION, choices=get_args(Precision))
    parser.add_argument("--fractions", default="0.1,0.25,1", help="GPU fraction per job, one suite run each")
    parser.add_argument("--gpu-memory-mb", type=int, default=2048, help="each job's cap when it shares the GPU")
    parser.add_argument("--off", default="", help="levers to leave off, passed to regimen run")
    parser.add_argument("--data-dir", type=Path, help="real data (default: SYNTHETIC at the real shapes)")
    parser.add_argument("--max-epochs", type=int, help="cap every job's epochs (default: the seed's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    (gpu,) = nvidia_smi("--query-gpu=name,memory.total,driver_version")[:1]
    report = {
        "machine": {**this_machine(), "gpu": gpu[0], "gpu_memory_mib": int(gpu[1]), "driver": gpu[2]},
        "backend": args.backend,
        "precision": args.precision,
        "data": str(args.data_dir) if args.data_dir else "SYNTHETIC at the real shapes",
        "max_epochs": args.max_epochs,
        "off": args.off,
        "runs": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = stamped(args.out, "gpu")
    for fraction in (float(f) for f in args.fractions.split(",")):
        with tempfile.TemporaryDirectory(prefix="regimen-gpu-") as scratch:
            report["runs"].append(run_suite(fraction, args, Path(scratch) / "results"))
        run = report["runs"][-1]
        done = [job for job in run["jobs"] if job["state"] == "done"]
        processes = len({job["pid"] for job in done})
        print(
            f"num_gpus {fraction:g}: {run['wall_s']} s, {len(done)}/{len(run['jobs'])} jobs done in {processes} "
            f"worker processes, GPU memory peak {run['gpu_memory_peak_total_mib']} MiB in all",
            flush=True,
        )
        for job in run["jobs"]:
            print("   ", json.dumps(job), flush=True)
        path.write_text(json.dumps(report, indent=1))  # after every run: a run cut short keeps the others
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
