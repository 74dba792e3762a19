"""Precision switch: ``auto`` follows the CPU's bf16 flags, autocast runs matmuls in bf16 over fp32 weights."""

from __future__ import annotations

import pytest
import torch

from disranker.models import precision


def test_auto_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert precision.resolve("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert precision.resolve("auto", "cpu") == "fp32"
    assert precision.resolve("bf16", "cpu") == "bf16" and precision.resolve("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto, got 'fp16'"):
        precision.resolve("fp16", "cpu")


def test_cpu_flags_are_read_from_cpuinfo():
    flags = precision.cpu_bf16_flags()
    assert set(flags) <= set(precision.CPU_BF16_FLAGS)


def test_bf16_autocast_keeps_fp32_weights_and_runs_the_matmul_in_bf16():
    layer = torch.nn.Linear(8, 4)
    with precision.autocast("bf16", "cpu"):
        out = layer(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    with precision.autocast("fp32", "cpu"):
        assert layer(torch.randn(2, 8)).dtype == torch.float32
