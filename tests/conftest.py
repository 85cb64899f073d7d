"""Shared test helpers: fake ``pbrl-train`` run directories with known numbers (no training)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import pytest
import torch
from helpers import RUN, run_train, start_train, wait_for
from omegaconf import OmegaConf


# Under pytest-xdist (`make test` runs 2 workers, one test file each at a time), each worker keeps to one torch thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def make_fake_run(path: str | Path, env_id: str, seed: int, returns: Sequence[float],
                  steps: Sequence[int] | None = None, precision: str = "fp32", agent: str = "sac",
                  finished: bool = True, steps_per_s: float = 100.0) -> Path:
    """Write a run directory the way ``pbrl-train`` lays it out and return its path.

    ``returns[i]`` is ``eval_return_mean`` at env step ``steps[i]`` (default 1000, 2000, ...).
    ``config.yaml`` and ``metrics.csv`` are always written; ``summary.json`` only when
    ``finished``, with ``final_eval_return = returns[-1]`` and ``wall_time_s = env_steps / steps_per_s``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    steps = list(steps) if steps is not None else [1000 * (i + 1) for i in range(len(returns))]
    assert len(steps) == len(returns), "one eval step per return"
    # The keys pbrl-report groups by, nested as OmegaConf writes them; flow style is valid YAML.
    (path / "config.yaml").write_text(
        f"env:\n  id: {env_id}\n  kwargs: {{}}\nagent:\n  name: {agent}\n"
        f"seed: {seed}\nsteps: {steps[-1] if steps else 0}\nprecision: {precision}\n")
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env_step", "eval_return_mean", "eval_return_std", "steps_per_s",
                         "wall_time_s", "train_return_last10", "episodes"])
        for i, (step, ret) in enumerate(zip(steps, returns)):
            writer.writerow([step, ret, 1.0, steps_per_s, step / steps_per_s, ret - 10.0, 5 * (i + 1)])
    if finished:
        env_steps = steps[-1] if steps else 0
        summary = {
            "env_id": env_id, "seed": seed, "env_steps": env_steps,
            "final_eval_return": returns[-1] if returns else None,
            "best_eval_return": max(returns) if returns else None,
            "wall_time_s": env_steps / steps_per_s, "steps_per_s": steps_per_s,
            "train_steps_per_s": steps_per_s, "precision": precision, "agent": agent,
        }
        (path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return path


@pytest.fixture
def fake_run() -> Callable[..., Path]:
    """``make_fake_run`` as a fixture, so test modules need not import conftest."""
    return make_fake_run


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny networks run faster that way and leave the other core alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """A 2x2 sweep (teacher x selection rule) through submitit_local, stopped by SIGTERM mid-way and relaunched,
    plus one cell that fails on a bad value: the data of the report and notebook tests."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    root = tmp_path_factory.mktemp("sweep")
    sweep = root / "sweep"
    (root / "conf" / "experiment").mkdir(parents=True)  # the fixed settings, so that run names stay short
    fixed = OmegaConf.from_dotlist([*RUN, "steps=1200", "snapshot.every=200"])
    (root / "conf" / "experiment" / "tiny.yaml").write_text("# @package _global_\n" + OmegaConf.to_yaml(fixed))
    args = ["-m", f"--config-dir={root / 'conf'}", "experiment=tiny", "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=30", "teacher=oracle,mistake", "query.selection=uniform,disagreement",
            f"hydra.sweep.dir={sweep}"]
    proc = start_train(args, root, root / "first.log")
    try:
        wait_for(lambda: len(list(sweep.glob("*/snapshot.pt"))) == 4, proc, root / "first.log", timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the launcher, submitit's job controllers and the runs
        proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while any(json.loads(r.read_text())["status"] == "running" for r in sweep.glob("*/run.json")):
        assert time.monotonic() < deadline, "the runs did not record their stop"
        time.sleep(0.1)
    (root / "stopped.json").write_text(json.dumps(
        {r.parent.name: json.loads(r.read_text()) for r in sweep.glob("*/run.json")}))
    second = run_train(args, root, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:]
    failed = run_train([*args[:5], "teacher=oracle", "query.selection=entropy", "feedback.segment=0",
                        f"hydra.sweep.dir={sweep}"], root, timeout=120)
    assert failed.returncode != 0
    return sweep


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch) -> str:
    """Kernel ``python3`` = this interpreter, whatever kernel specs the machine has installed.

    JUPYTER_PATH comes first in jupyter's search path, so this spec shadows a ``python3`` that
    might point at another Python without pbrl installed.
    """
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (pbrl tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # %matplotlib inline overrides it; no display either way
    return "python3"
