"""SAC-PEBBLE's behaviour, pinned: a tiny fixed-seed run replays its recorded rows.

Refactors of the preference loop must not change what a PEBBLE run does. tests/data/
pebble_reference.json holds the metrics, rounds and episode rows of one tiny Pendulum run (seeding,
pretraining on the k-NN bonus, four feedback rounds with relabelling, learning) with the CPU
capability and torch version it was recorded under. Under the same ones, every value must match to
fp32 round-off; on another instruction set matmuls round differently and training amplifies that,
so there the run's structure must match: the same rows at the same steps and the same label counts.

Record it again only on purpose, after a change that is meant to alter training, and say why in the
commit:  PBRL_RECORD_REFERENCE=1 python -m pytest tests/test_pebble_reference.py
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch

from helpers import tiny_config
from pbrl.workspace import Workspace

REFERENCE = Path(__file__).resolve().parent / "data" / "pebble_reference.json"
OVERRIDES = ["seed=3", "steps=1200", "seed_steps=200", "pretrain.steps=300", "feedback.num_interact=200",
             "feedback.mb_size=8", "feedback.max_feedback=30", "reward_model.hidden_dim=32",
             "reward_model.epochs=5", "eval.every=400", "eval.episodes=2"]
# wall-clock columns (seconds, rates: named *_s) differ on every run; everything else follows from the seed
# the steps, counters and budget of a run: identical on any CPU
STRUCTURE = {"env_step", "episode", "length", "feedback_asked", "labels", "new_labels", "asked_now", "trained"}


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in csv.DictReader(f)]


def _record(run_dir: Path) -> dict:
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "overrides": OVERRIDES,
            **{name: _rows(run_dir / f"{name}.csv") for name in ("metrics", "rounds", "episodes")}}


def _same(mine: str, theirs: str, strict: bool) -> bool:
    try:
        a, b = float(mine), float(theirs)
    except ValueError:
        return mine == theirs
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) if strict else True


def test_a_tiny_pebble_run_replays_its_recorded_rows(tmp_path):
    run_dir = tmp_path / "run"
    Workspace(tiny_config(*OVERRIDES), run_dir).train()
    got = _record(run_dir)
    if os.environ.get("PBRL_RECORD_REFERENCE") == "1":
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"recorded {REFERENCE.name}; commit it with the reason")
    want = json.loads(REFERENCE.read_text())
    assert want["overrides"] == OVERRIDES, "the reference was recorded with other overrides: record it again"
    strict = (want["cpu_capability"], want["torch"]) == (got["cpu_capability"], got["torch"])
    for name in ("metrics", "rounds", "episodes"):
        assert len(got[name]) == len(want[name]), f"{name}.csv: {len(got[name])} rows, recorded {len(want[name])}"
        assert len(want[name]) > 0, f"the reference has no {name} rows"
        for i, (mine, theirs) in enumerate(zip(got[name], want[name])):
            assert set(mine) == set(theirs), f"{name}.csv row {i}: columns {sorted(set(mine) ^ set(theirs))} differ"
            for key in theirs:
                check = strict or key in STRUCTURE
                assert _same(mine[key], theirs[key], check), (
                    f"{name}.csv row {i} ({'env_step ' + str(theirs.get('env_step', '?'))}): {key} = {mine[key]}, "
                    f"recorded {theirs[key]}" + ("" if strict else " (structure only: another CPU or torch)"))
