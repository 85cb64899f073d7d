"""A hydra multirun (joblib launcher, 2 parallel jobs) killed outright, resumed, rerun and reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import TINY, run_train, start_train


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


def test_multirun_resumes_after_a_kill_and_reports(tmp_path: Path):
    sweep = tmp_path / "sweep"
    args = ["-m", "env.id=Pendulum-v1", "seed=0,1", "steps=1200", "seed_steps=200", "snapshot.every=400",
            "eval.every=600", "eval.episodes=1", "eval.video=none", "logger.tensorboard=false",
            f"hydra.sweep.dir={sweep}", *TINY]

    proc = start_train(args, tmp_path, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 180
        while len(list(sweep.glob("*/snapshot.pt"))) < 2:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "timed out waiting for both snapshots"
            time.sleep(0.02)
    finally:
        _kill_group(proc)
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 2 and [("seed=0" in r.name, "seed=1" in r.name) for r in runs] == [(True, False),
                                                                                           (False, True)]
    assert not any((r / "summary.json").exists() for r in runs), "a job finished before the kill"

    second = run_train(args, tmp_path)
    assert second.returncode == 0, second.stdout
    assert second.stdout.count("pbrl: resumed ") == 2, second.stdout  # both had a snapshot, neither had finished
    summaries = {}
    for run in runs:
        summaries[run] = json.loads((run / "summary.json").read_text())
        assert summaries[run]["env_steps"] == 1200
        assert not (run / "snapshot.pt").exists()
    assert sorted(s["seed"] for s in summaries.values()) == [0, 1]

    started = time.monotonic()
    third = run_train(args, tmp_path)
    elapsed = time.monotonic() - started
    assert third.returncode == 0, third.stdout
    assert third.stdout.count("already finished") == 2, third.stdout
    assert elapsed < 120, f"a finished multirun took {elapsed:.0f} s to do nothing"
    for run in runs:
        assert json.loads((run / "summary.json").read_text()) == summaries[run]  # untouched

    report = subprocess.run([sys.executable, "-m", "pbrl.report", str(sweep), "--by", "seed",
                             "--out", str(tmp_path / "rep")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=180)
    assert report.returncode == 0, report.stdout
    assert "Traceback" not in report.stdout
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "seed" in text
