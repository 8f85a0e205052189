"""What a benchmark ran on, written beside its numbers: this machine's speed drifts and differs from
others', so a number is only comparable with the machine and versions that produced it."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from jobs.cpus import native_bfloat16

PACKAGES = ("tensorflow", "keras", "ray", "jax", "jaxlib")


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def processor() -> str:
    """The CPU's model name (``platform.processor()`` is empty on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor()


def this_machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "processor": processor(),
        "platform": platform.platform(),
        "native_bfloat16": native_bfloat16(),
        "python": platform.python_version(),
        "packages": {package: installed(package) for package in PACKAGES},
    }
