"""The backflip pieces: rotation metrics on synthetic pitch, the scripted backflip teacher, the preset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from helpers import compose_config, tiny_config
from pbrl.envs.flips import backward_rotations, completed_rotations, landed_flips
from pbrl.errors import ConfigError
from pbrl.query.base import QueryPool
from pbrl.teachers import RewardLedger, make_teacher
from pbrl.workspace import Workspace

TURN = 2 * math.pi


def _turns(*waypoints: float, steps: int = 50) -> np.ndarray:
    """A pitch trajectory through the waypoints (in turns), linear between them."""
    return np.concatenate([np.linspace(a, b, steps, endpoint=False) for a, b in zip(waypoints, waypoints[1:])]
                          + [[waypoints[-1]]]) * TURN


@pytest.mark.parametrize("waypoints, completed", [
    ((0, 0.2, -0.1, 0.15, 0), 0),  # rocking back and forth: no turn
    ((0, -1.05), 1),  # one backward turn (pitch decreases)
    ((0, -2.3), 2),  # two
    ((0, 1.0, 2.1), 0),  # forward flips are not counted
    ((0, -0.6, 0, -0.6, 0, -0.6), 0),  # three half turns backward and back: the record, not the sum, counts
    ((0, 1.0, -0.5), 0),  # a forward turn then half a turn back from the start
    ((0, -0.99), 0),  # almost
])
def test_completed_backward_rotations(waypoints, completed):
    pitch = _turns(*waypoints)
    assert completed_rotations(pitch) == completed
    assert backward_rotations(pitch) == pytest.approx(max(0.0, -min(waypoints)), abs=1e-9)


def test_a_flip_lands_when_the_body_stands_upright_again_before_the_next_one():
    pitch = _turns(0, -1, -1, -2, -2.5)  # turn, stand, turn, half turn
    height = np.full(len(pitch), 1.2)
    assert landed_flips(pitch, height) == 2
    assert landed_flips(pitch, np.full(len(pitch), 0.3)) == 0  # lying on the ground is not landing
    rolling = _turns(0, -1, -1.3, -2)  # the second turn completes without standing in between
    stood = np.where(np.arange(len(rolling)) < 50, 1.2, 0.3)  # upright only during the first turn
    assert landed_flips(rolling, stood) == 0  # upright before the turn completed does not count


def _queries(pitch_rates: list[list[float]], nq: int = 6, t: int = 20) -> QueryPool:
    """Queries whose segments spin at constant pitch velocities [query][segment] (rad/s)."""
    rates = np.asarray(pitch_rates, np.float64)
    n, k = rates.shape
    sim = np.zeros((n, k, t, 2 * nq))
    sim[..., nq + 2] = rates[..., None]  # qvel of rooty
    return QueryPool(np.zeros((n, k, t), np.int64), torch.zeros(n, k, t, 11), torch.zeros(n, k, t, 3), sim)


def test_the_backflip_teacher_prefers_the_segment_that_turns_further_backward():
    teacher = make_teacher(compose_config(["teacher=backflip_oracle"])["teacher"], RewardLedger(10),
                           np.random.default_rng(0), {"env_id": "Hopper-v5"})
    answers = teacher.answer(_queries([[-5.0, -1.0], [2.0, -0.5], [3.0, 1.0]]))
    # a negative pitch velocity turns backward: the more negative, the better; forward spinning is worst
    assert answers.ranking[:, 0].tolist() == [0, 1, 1]
    ranked = teacher.answer(_queries([[-1.0, -3.0, 0.0, 2.0]]))
    assert ranked.ranking[0].tolist() == [1, 0, 2, 3]  # K = 4: a full ranking by backward turn


def test_the_backflip_teacher_never_reads_the_env_reward():
    ledger = RewardLedger(10)
    ledger.reward[:] = np.nan  # any use of the env's reward would poison the ranking
    teacher = make_teacher(compose_config(["teacher=backflip_oracle", "teacher.mistake=0.2"])["teacher"], ledger,
                           np.random.default_rng(0), {"env_id": "Hopper-v5"})
    rates = np.random.default_rng(1).normal(size=(2000, 2))
    answers = teacher.answer(_queries(rates.tolist()))
    truth = np.argmin(rates, axis=1)  # more negative = more backward
    assert abs(np.mean(answers.ranking[:, 0] != truth) - 0.2) < 0.03  # B-Pref's mistake rate carries over


def test_the_backflip_teacher_needs_a_mujoco_body():
    with pytest.raises(ConfigError, match="MuJoCo"):
        make_teacher(compose_config(["teacher=backflip_oracle"])["teacher"], RewardLedger(10),
                     np.random.default_rng(0), {"env_id": "Pendulum-v1"})
    with pytest.raises(ConfigError) as err:
        make_teacher(compose_config(["teacher=backflip_oracle", "teacher.pitch_qpos=40"])["teacher"],
                     RewardLedger(10), np.random.default_rng(0), {"env_id": "Hopper-v5"})
    assert err.value.field == "teacher.pitch_qpos"


def test_the_preset_composes_with_the_scripted_and_the_human_teacher(tmp_path):
    scripted = compose_config(["experiment=backflip"])
    assert scripted["teacher"]["name"] == "backflip" and scripted["env"]["kwargs"]["terminate_when_unhealthy"] is False
    assert scripted["eval"]["metrics"] == ["flips"] and scripted["feedback"]["segment"] == 125
    ws = Workspace(tiny_config("experiment=backflip", "teacher=human", "teacher.serve=false"), tmp_path / "run")
    try:
        assert ws.feedback.learner.teacher.store.get_meta("instruction") == "Which hopper is closer to doing a backflip?"
    finally:
        ws.feedback.learner.teacher.close()


def test_a_backflip_run_logs_the_flip_metrics(tmp_path):
    cfg = tiny_config("experiment=backflip", "steps=1500", "seed_steps=200", "pretrain.steps=300",
                      "feedback.segment=25", "feedback.mb_size=10", "feedback.max_feedback=20",
                      "feedback.num_interact=500", "eval.every=0", "eval.episodes=2", "env.max_episode_steps=100",
                      "reward_model.hidden_dim=32")
    summary = Workspace(cfg, tmp_path / "run").train()
    assert summary["labels"] == 20 and 0 <= summary["final_eval_flip_rate"] <= 1
    assert summary["final_eval_rotations_mean"] >= 0 and summary["final_eval_landed_rate"] <= summary["final_eval_flip_rate"]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"eval_rotations_mean", "eval_flip_rate", "eval_landed_rate"} <= set(header)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["teacher"] == "backflip"


def test_flip_metrics_are_refused_for_a_body_without_a_pitch(tmp_path):
    with pytest.raises(ConfigError) as err:
        Workspace(tiny_config("eval.metrics=[flips]"), tmp_path / "run")
    assert err.value.field == "eval.metrics"
