"""Run a command and measure it: wall time, and the peak memory of its whole process tree.

Memory is the sum of PSS (proportional set size) over the process and all its descendants, sampled a
few times a second: shared pages (Ray's object store, shared libraries) are split between the processes
that map them instead of counted once per process, as RSS would.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_memory_bytes: int
    returncode: int


def tree_pss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += process.memory_full_info().pss
    return total


def measure(command: list[str], log: Path, cwd: Path, env: dict | None = None, interval: float = 0.2) -> Measured:
    """Run ``command`` to completion, its output appended to ``log``."""
    peak = 0
    with log.open("a") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(child.pid)
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.wait(interval):
                peak = max(peak, tree_pss(root))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = child.wait()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return Measured(seconds, peak, returncode)
