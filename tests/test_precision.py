"""``precision: auto`` (pbrl/common/precision.py): bf16 only where the hardware runs it natively."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import compose_config, tiny_config
from pbrl.common import precision
from pbrl.errors import ConfigError
from pbrl.workspace import Workspace

CPU = torch.device("cpu")


def fake_cpu(monkeypatch, bf16: bool) -> None:
    """Pretend the CPU has (or lacks) AVX512-BF16, and AMX in neither case."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)


def test_auto_is_fp32_without_native_bf16_and_bf16_with_it(monkeypatch):
    fake_cpu(monkeypatch, bf16=False)
    used, why = precision.resolve_precision("auto", CPU)
    assert used == "fp32" and "no AVX512-BF16 or AMX" in why
    fake_cpu(monkeypatch, bf16=True)
    used, why = precision.resolve_precision("auto", CPU)
    assert used == "bf16" and "AVX512-BF16/AMX" in why


def test_explicit_bf16_without_native_support_runs_and_warns_with_the_measured_slowdown(monkeypatch):
    fake_cpu(monkeypatch, bf16=False)
    monkeypatch.setattr(precision, "bf16_slowdown", lambda device_type="cpu": 48.7)
    used, why = precision.resolve_precision("bf16", CPU)
    assert used == "bf16" and why.startswith("warning:") and "49x slower than fp32" in why
    fake_cpu(monkeypatch, bf16=True)
    assert precision.resolve_precision("bf16", CPU) == ("bf16", "precision bf16 (as set; CPU capability "
                                                                f"{torch.backends.cpu.get_cpu_capability()}, "
                                                                "AVX512-BF16/AMX)")
    assert precision.resolve_precision("fp32", CPU)[0] == "fp32"


def test_the_default_is_fp32_on_every_machine(monkeypatch):
    """bf16 is opt-in (``precision=auto``): by default a CPU with native bf16 computes what every other machine does."""
    cfg = compose_config()
    assert cfg["precision"] == "fp32"
    for bf16 in (True, False):
        fake_cpu(monkeypatch, bf16=bf16)
        assert precision.resolve_precision(cfg["precision"], CPU)[0] == "fp32"


def test_the_probe_measures_a_real_ratio():
    assert precision.bf16_slowdown("cpu", size=64, repeats=1) > 0


def test_a_run_records_the_precision_it_used(tmp_path, monkeypatch, capsys):
    fake_cpu(monkeypatch, bf16=False)
    summary = Workspace(tiny_config("teacher=none", "steps=300", "seed_steps=100", "precision=auto"),
                        tmp_path / "auto").train()
    assert (summary["precision"], summary["precision_used"]) == ("auto", "fp32")
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["precision_used"] == "fp32"
    assert "precision fp32 (auto: " in capsys.readouterr().out
    monkeypatch.setattr(precision, "bf16_slowdown", lambda device_type="cpu": 50.0)
    ws = Workspace(tiny_config("teacher=none", "precision=bf16"), tmp_path / "bf16")
    assert ws.precision == "bf16" and "warning: precision=bf16" in capsys.readouterr().err


def test_an_unknown_precision_names_the_field(tmp_path):
    with pytest.raises(ConfigError) as err:
        Workspace(tiny_config("precision=fp16"), tmp_path)
    assert "precision" in str(err.value) and "auto" in str(err.value)

