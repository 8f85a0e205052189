"""What this machine's CPU can do, read from ``/proc/cpuinfo`` (Linux); unknown elsewhere."""

from __future__ import annotations

from pathlib import Path

#: CPU flags of a native bfloat16 multiply (x86: AMX, AVX512-BF16; Arm: BF16); without one, bfloat16 is
#: emulated and slower than float32.
BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU multiplies bfloat16 natively; None where ``cpuinfo`` cannot be read."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return None
    return any(flag in flags for flag in BFLOAT16_FLAGS)


def model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name; None where ``cpuinfo`` cannot be read or names none."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
