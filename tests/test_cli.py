"""Tests for ``pbrl/train.py`` (``pbrl-train``) as a user runs it: a subprocess per command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from helpers import TINY, run_train, tiny_config
from pbrl.errors import ConfigError
from pbrl.workspace import Workspace

# (override, the field the error must name): input pbrl itself validates, before anything runs
BAD_INPUT = [
    ("env.id=NoSuchEnv-v0", "env.id"),
    ("env.id=CartPole-v1", "env.id"),
    ("env.id=Pendulm-v1", "env.id"),
    ("env.id=nosuchmodule:Foo-v0", "env.id"),
    ("+env.kwargs.no_such_option=1", "env.kwargs"),
    ("env.kwargs=5", "env.kwargs"),
    ("steps=0", "steps"),
    ("steps=-5", "steps"),
    ("precision=fp16", "precision"),
    ("device=tpu", "device"),
    ("+agent.nosuch=1", "agent.nosuch"),
    ("agent.tau=2", "agent.tau"),
    ("eval.video=sometimes", "eval.video"),
    ("logger.wandb.mode=maybe", "logger.wandb.mode"),
    ("agent.depth=1.5", "agent.depth"),
    ("eval.episodes=1.5", "eval.episodes"),
]


@pytest.mark.parametrize("override, field", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_names_the_field_before_anything_runs(tmp_path: Path, override: str, field: str):
    # in-process: the run builds its Workspace from the composed config; pbrl-train turns this ConfigError
    # into its one error line (the command-line cases below check that path end to end)
    with pytest.raises(ConfigError) as err:
        Workspace(tiny_config("steps=50", "seed_steps=50", override), tmp_path / "run")
    assert err.value.field == field and str(err.value).startswith(f"{field}: "), str(err.value)
    assert not (tmp_path / "run" / "summary.json").exists()


# the command-line path, end to end: pbrl's own errors (exit 2, one line) and hydra's (keys not in the config)
CLI_BAD_INPUT = [("steps=0", "steps", True), ("env.id=Pendulm-v1", "env.id", True), ("foo=1", "foo", False),
                 ("agent.nosuch=1", "agent.nosuch", False)]


@pytest.mark.parametrize("override, field, ours", CLI_BAD_INPUT, ids=[b[0] for b in CLI_BAD_INPUT])
def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path, override: str, field: str, ours: bool):
    # a short run, so that input that slips through validation fails (or ends) in seconds; the bad override last
    args = [f"hydra.run.dir={tmp_path / 'run'}", *TINY, "steps=50", "seed_steps=50", "eval.episodes=1",
            "eval.video=none", "logger.tensorboard=false", override]
    proc = run_train(args, cwd=tmp_path, timeout=120)
    out = proc.stdout
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    assert field in out, out
    if ours:
        assert proc.returncode == 2, out
        errors = [line for line in out.splitlines() if line.startswith("pbrl-train: error:")]
        assert len(errors) == 1 and errors[0].startswith(f"pbrl-train: error: {field}:"), out
    assert not (tmp_path / "run" / "summary.json").exists()


def test_tiny_pendulum_run_writes_its_outputs(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = run_train(["steps=600", "seed_steps=200", "eval.every=300", "eval.episodes=1", "logger.tensorboard=false",
                      f"hydra.run.dir={run_dir}", *TINY], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "Traceback" not in proc.stdout

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["steps"] == 600 and config["env"]["id"] == "Pendulum-v1" and config["agent"]["hidden_dim"] == 32

    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in rows] == [300, 600]
    assert all(float(r["eval_return_mean"]) < 0 for r in rows)  # Pendulum rewards are negative

    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("env_id", "seed", "env_steps", "final_eval_return", "best_eval_return", "wall_time_s", "steps_per_s"):
        assert key in summary, key
    assert (summary["env_id"], summary["seed"], summary["env_steps"]) == ("Pendulum-v1", 0, 600)
    assert summary["final_eval_return"] == pytest.approx(float(rows[-1]["eval_return_mean"]))
    assert summary["best_eval_return"] == pytest.approx(max(float(r["eval_return_mean"]) for r in rows))
    assert summary["wall_time_s"] > 0 and summary["steps_per_s"] > 0

    with open(run_dir / "episodes.csv") as f:
        episodes = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in episodes] == [200, 400, 600]

    videos = sorted((run_dir / "videos").glob("*.mp4"))  # eval.video=last by default: the final evaluation
    assert [v.name for v in videos] == ["eval_00000600.mp4"]
    head = videos[0].read_bytes()[:12]
    assert head[4:8] == b"ftyp" and videos[0].stat().st_size > 1000
    assert (run_dir / "agent.pt").exists() and not (run_dir / "snapshot.pt").exists()
