"""Tests for snapshot/resume in ``pbrl/workspace.py``: a killed run or multirun picks up where it left off."""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY, run_train, start_train, tiny_config
from pbrl.common.logger import Logger
from pbrl.errors import ConfigError
from pbrl.workspace import Workspace


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended (status {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies, already dead, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: ask the kernel whether the group has any member at all
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    live = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            live.append(int(stat.parent.name))
    return live


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every joblib/loky worker (they share its process group)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _live_members(proc.pid):
        assert time.monotonic() < deadline, f"processes survived the kill: {_live_members(proc.pid)}"
        time.sleep(0.05)


def test_a_killed_multirun_resumes_to_the_end_reruns_as_a_no_op_and_reports(tmp_path: Path):
    """A joblib multirun (2 jobs in parallel) killed outright, past a snapshot and an evaluation of each run."""
    sweep = tmp_path / "sweep"
    args = ["-m", "env.id=Pendulum-v1", "seed=0,1", "steps=2000", "seed_steps=200", "snapshot.every=500",
            "eval.every=1000", "eval.episodes=1", "eval.video=none", "logger.tensorboard=false",
            f"hydra.sweep.dir={sweep}", *TINY]
    proc = start_train(args, tmp_path, tmp_path / "first.log")
    try:
        # the killed runs have logged rows their snapshots lack
        _wait_for(lambda: len(list(sweep.glob("*/snapshot.pt"))) == 2 and len(list(sweep.glob("*/metrics.csv"))) == 2,
                  proc, 180, "both runs' first snapshot and evaluation")
    finally:
        _kill_group(proc)
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [("seed=0" in r.name, "seed=1" in r.name) for r in runs] == [(True, False), (False, True)]
    assert not any((r / "summary.json").exists() for r in runs), "a run finished before the kill"

    second = run_train(args, tmp_path)
    assert second.returncode == 0, second.stdout
    resumed = [int(step) for step in re.findall(r"resumed .* at step (\d+)", second.stdout)]
    assert len(resumed) == 2 and all(500 <= step < 2000 and step % 500 == 0 for step in resumed), second.stdout
    summaries = {}
    for run in runs:
        summaries[run] = json.loads((run / "summary.json").read_text())
        assert summaries[run]["env_steps"] == 2000
        assert [int(r["env_step"]) for r in _rows(run / "metrics.csv")] == [1000, 2000]
        episodes = _rows(run / "episodes.csv")
        numbers = [int(r["episode"]) for r in episodes]
        assert numbers == sorted(set(numbers)), numbers  # strictly increasing: no episode logged twice
        env_steps = [int(r["env_step"]) for r in episodes]
        assert env_steps == sorted(set(env_steps)) and env_steps[-1] <= 2000
        assert len(numbers) >= 9  # 2000 steps of 200-step episodes, one cut short by the kill
        assert not (run / "snapshot.pt").exists()
    assert sorted(s["seed"] for s in summaries.values()) == [0, 1]

    started = time.monotonic()
    third = run_train(args, tmp_path)
    assert third.returncode == 0, third.stdout
    assert third.stdout.count("already finished") == 2, third.stdout
    assert time.monotonic() - started < 120  # start-up only (imports are slow on a loaded machine)
    for run in runs:
        assert json.loads((run / "summary.json").read_text()) == summaries[run]  # untouched

    report = subprocess.run([sys.executable, "-m", "pbrl.report", str(sweep), "--by", "seed",
                             "--out", str(tmp_path / "rep")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=180)
    assert report.returncode == 0 and "Traceback" not in report.stdout, report.stdout
    assert "seed" in (tmp_path / "rep" / "report.md").read_text()


def _nan_as_none(rows: list[dict]) -> list[dict]:
    """Rows comparable with ==: a NaN (a learned return before the first reward model) never equals itself."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]


def _capture(ws: Workspace) -> dict:
    """A deep copy of everything a snapshot must restore, taken at the moment it is written."""
    return {"agent": copy.deepcopy(ws.agent.state_dict()), "step": ws.step, "episode": ws.episodes.ended,
            "store": {k: getattr(ws.store, k).copy() for k in ws.store._COLUMNS},
            "pos": ws.store.pos, "size": ws.store.size, "rng": copy.deepcopy(ws.rng),
            "torch_rng": torch.get_rng_state(), "np_global": np.random.get_state(),
            "episode_rows": copy.deepcopy(ws.logger.episode_rows)}


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=where)
    else:
        assert a == b, where


def test_snapshot_restores_the_whole_training_state(tmp_path: Path, monkeypatch):
    cfg = tiny_config("steps=400", "seed_steps=100", "snapshot.every=300", "snapshot.keep=true")
    run_dir = tmp_path / "run"
    captured = {}
    save = Workspace.save_snapshot

    def spy(self):
        captured.update(_capture(self))
        save(self)

    monkeypatch.setattr(Workspace, "save_snapshot", spy)
    first = Workspace(cfg, run_dir)
    first.train()  # snapshot at step 300 (mid-episode), kept after the end at 400
    assert captured["step"] == 300 and captured["episode"] == 1
    assert first.step == 400  # the live run moved on: the restored state must be the snapshot's

    torch.manual_seed(123)  # scramble every RNG so that only load_snapshot can bring them back
    np.random.seed(123)
    second = Workspace(cfg, run_dir)
    second.logger = Logger(run_dir, cfg, tensorboard=False)
    second.load_snapshot()

    # episode 1 was cut off at the snapshot; the fresh episode after the resume gets id 2
    assert (second.step, second.episodes.ended, second.episodes.next_id) == (300, 1, 2) and second.envs.ended.all()
    _assert_same(second.agent.state_dict(), captured["agent"], "agent")  # nets, optimisers, log_alpha, counter
    moments = second.agent.actor_opt.state_dict()["exp_avg"]
    assert any(float(m.abs().sum()) > 0 for m in moments), "the optimiser moments must be restored, not zeros"
    assert (second.store.pos, second.store.size) == (captured["pos"], captured["size"])
    for name, column in captured["store"].items():
        np.testing.assert_array_equal(getattr(second.store, name), column, err_msg=name)
    np.testing.assert_array_equal(second.rng.random(5), captured["rng"].random(5))
    np.testing.assert_array_equal(second.rng.integers(2**31, size=3), captured["rng"].integers(2**31, size=3))
    torch.testing.assert_close(torch.get_rng_state(), captured["torch_rng"], rtol=0, atol=0)
    np.testing.assert_array_equal(np.random.get_state()[1], captured["np_global"][1])
    assert _nan_as_none(second.logger.episode_rows) == _nan_as_none(captured["episode_rows"])
    assert [int(r["env_step"]) for r in _rows(run_dir / "episodes.csv")] == [200]  # rewritten to match

    # the restored agent trains on exactly as the original would have from that state
    batch = second.agent.buffer.sample(32, torch.Generator().manual_seed(0))
    twin = copy.deepcopy(second.agent)
    twin.load_state_dict(copy.deepcopy(captured["agent"]))
    torch.manual_seed(0)
    second.agent.update(batch)
    torch.manual_seed(0)
    twin.update(batch)
    for a, b in zip(second.agent.critic.parameters(), twin.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_finished_run_cannot_silently_grow(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"env_steps": 100}))
    with pytest.raises(ConfigError) as info:
        Workspace(tiny_config("steps=400"), run_dir).train()
    assert info.value.field == "steps"


def test_the_fresh_episode_after_a_resume_gets_its_own_id(tmp_path: Path):
    # a snapshot mid-episode, then a resume: the cut episode and the fresh one are different episodes,
    # so they must not share an id in the buffer (segment sampling, last_episodes and the viewer key on it)
    cfg = tiny_config("steps=400", "seed_steps=400", "snapshot.every=300", "snapshot.keep=true")
    run_dir = tmp_path / "run"
    Workspace(cfg, run_dir).train()
    (run_dir / "summary.json").unlink()  # as if killed after the snapshot at step 300
    resumed = Workspace(cfg, run_dir)
    resumed.train()
    episode, step = resumed.store.episode, resumed.store.step
    assert step[299] == 99 and step[300] == 0  # the cut episode (steps 0..99) and the fresh one
    assert episode[:300].tolist() == [0] * 200 + [1] * 100
    assert episode[300] != episode[299], "two episodes share one id"
    assert len(np.unique(episode)) == 3
    logged = [int(r["episode"]) for r in _rows(run_dir / "episodes.csv")]
    assert logged == sorted(set(logged)) and logged[0] == 0


def test_resuming_with_different_settings_is_refused(tmp_path: Path):
    run_dir = tmp_path / "run"
    first = Workspace(tiny_config("steps=300", "seed_steps=100"), run_dir)
    first.logger = Logger(run_dir, first.cfg, tensorboard=False)
    first.save_snapshot()
    other = Workspace(tiny_config("steps=300", "seed_steps=100", "agent.actor_lr=0.001"), run_dir)
    other.logger = Logger(run_dir, other.cfg, tensorboard=False)
    with pytest.raises(ConfigError) as err:
        other.load_snapshot()
    assert err.value.field == "agent.actor_lr"
    longer = Workspace(tiny_config("steps=600", "seed_steps=100", "threads=1"), run_dir)  # may run longer
    longer.logger = Logger(run_dir, longer.cfg, tensorboard=False)
    longer.load_snapshot()


def test_settings_added_after_the_snapshot_do_not_block_a_resume(tmp_path: Path, capsys):
    """A snapshot from an older pbrl lacks newer config keys: resume, and say which values are now used."""
    run_dir = tmp_path / "run"
    first = Workspace(tiny_config("steps=300", "seed_steps=100"), run_dir)
    first.logger = Logger(run_dir, first.cfg, tensorboard=False)
    first.save_snapshot()
    state = torch.load(run_dir / "snapshot.pt", weights_only=False)
    del state["config"]["query"]["k"]  # as if written before query.k existed
    torch.save(state, run_dir / "snapshot.pt")
    again = Workspace(tiny_config("steps=300", "seed_steps=100"), run_dir)
    again.logger = Logger(run_dir, again.cfg, tensorboard=False)
    again.load_snapshot()
    assert "query.k=2" in capsys.readouterr().out
    state["config"]["seed"] = 5  # a key both have, with different values, is still refused
    torch.save(state, run_dir / "snapshot.pt")
    with pytest.raises(ConfigError) as err:
        again.load_snapshot()
    assert err.value.field == "seed"
