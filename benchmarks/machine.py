"""What a benchmark ran on, written beside its numbers: this machine's speed drifts and differs from
others', so a number is only comparable with the machine and versions that produced it."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from pathlib import Path

from jobs.cpus import model_name, native_bfloat16

PACKAGES = ("tensorflow", "keras", "ray", "jax", "jaxlib")


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def this_machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "processor": model_name() or platform.processor(),  # platform's is empty on Linux
        "platform": platform.platform(),
        "native_bfloat16": native_bfloat16(),
        "python": platform.python_version(),
        "packages": {package: installed(package) for package in PACKAGES},
    }


def stamped(folder: Path, kind: str) -> Path:
    """``folder/KIND-YYYYMMDDTHHMMSSZ.json``: each run's numbers in a file of their own, named by when (UTC)."""
    return folder / f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
