"""Which floating-point precision a teacher runs in: ``fp32``, ``bf16`` (autocast over fp32 weights) or ``auto``.

``auto`` picks bf16 only where the hardware multiplies bf16 natively: a CUDA device that supports it, or a CPU whose
flags include ``avx512_bf16`` or ``amx_bf16`` (``lscpu``). On a CPU without them torch emulates bf16 and is slower
than fp32. Weights (and the optimizer's master copy) stay fp32; autocast runs matmuls in bf16 and keeps reductions,
softmax and losses in fp32.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS = ("fp32", "bf16", "auto")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (benchmarks say which CPU a figure is from), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.machine()


def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 instruction flags this CPU reports in /proc/cpuinfo (empty off Linux or without them)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return ()
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in flags)


def resolve(precision: Precision, device_type: str) -> Literal["fp32", "bf16"]:
    """``precision`` with ``auto`` decided for ``device_type`` ("cpu" or "cuda")."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_flags() else "fp32"


def autocast(precision: Precision, device_type: str):
    """A context that runs the forward (and so its backward) in the resolved precision."""
    if resolve(precision, device_type) == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
