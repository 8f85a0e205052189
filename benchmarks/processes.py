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
    #: what made up the peak: each process's name and PSS at that moment, largest first
    at_peak: tuple[tuple[str, int], ...] = ()


def tree_pss(root: psutil.Process) -> tuple[tuple[str, int], ...]:
    """Each process of the tree under ``root`` (itself included): its name, as its command line gives it
    (Ray's workers name their task there), and its PSS; largest first."""
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return ()
    sizes = []
    for process in processes:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            command = process.cmdline()
            if not command:
                name = process.name()
            else:  # a Ray worker's title, "ray::regimen:fashion/develop/s0", is no path
                name = command[0] if command[0].startswith("ray::") else Path(command[0]).name
            sizes.append((name, process.memory_full_info().pss))
    return tuple(sorted(sizes, key=lambda size: -size[1]))


def measure(command: list[str], log: Path, cwd: Path, env: dict | None = None, interval: float = 0.2) -> Measured:
    """Run ``command`` to completion, its output appended to ``log``."""
    peak, at_peak = 0, ()
    with log.open("a") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(child.pid)
        done = threading.Event()

        def sample():
            nonlocal peak, at_peak
            while not done.wait(interval):
                sizes = tree_pss(root)
                total = sum(size for _, size in sizes)
                if total > peak:
                    peak, at_peak = total, sizes

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = child.wait()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return Measured(seconds, peak, returncode, at_peak)
