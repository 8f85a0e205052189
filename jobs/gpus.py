"""This machine's NVIDIA GPUs as ``nvidia-smi`` reports them: read without a framework, since importing
TensorFlow or JAX would fix Keras' backend, and JAX its GPU settings, before a job has chosen them."""

from __future__ import annotations

import os
import subprocess


def nvidia_smi(*query: str) -> list[list[str]]:
    """``nvidia-smi QUERY`` as CSV rows of cells; raises ``OSError`` or ``subprocess.SubprocessError``
    where nvidia-smi is missing or fails."""
    command = ["nvidia-smi", *query, "--format=csv,noheader,nounits"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


def local_gpus() -> float:
    """The GPUs this process may use: those nvidia-smi lists, at most as many as ``CUDA_VISIBLE_DEVICES``
    names; none where there is no nvidia-smi."""
    try:
        count = len(nvidia_smi("--query-gpu=index"))
    except (OSError, subprocess.SubprocessError):
        return 0.0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([device for device in visible.split(",") if device.strip()]))
    return float(count)


def gpu_total_mb() -> int:
    """Memory of the first GPU this process may use: JAX's cap is a fraction of it, and JAX cannot be
    asked before it starts."""
    device = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    try:
        return int(nvidia_smi(f"--id={device}", "--query-gpu=memory.total")[0][0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        raise RuntimeError(f"cannot read the GPU's memory with nvidia-smi ({error}) to cap JAX's share") from None
