"""A scripted stand-in for a person teaching a backflip: prefers the segment that rotates backward more.

It knows nothing of the environment's reward. Each step of a segment is judged by the torso's
backward rotation in that step, −ω·dt, with ω the pitch velocity (``rooty``, positive when the
torso tilts the way the body walks) read from the stored simulator state; a segment's score is the
sum, i.e. how far it turned backward. Everything else is the B-Pref teacher
(``pbrl/teachers/scripted.py``): rationality ``beta``, myopia ``gamma``, ``mistake``, ``skip`` and
``equal``. The skip and equal thresholds are fractions of a margin that, without an env reward to
average, is the mean absolute score of the round's own segments.
"""

from __future__ import annotations

import numpy as np

from typing import Any, Mapping

from pbrl.buffers.episodes import QueryPool
from pbrl.errors import ConfigError
from pbrl.teachers.base import Teacher, register
from pbrl.teachers.ledger import RewardLedger
from pbrl.teachers.scripted import ScriptedTeacher, noise_params


class BackflipTeacher(ScriptedTeacher):
    """``teacher=backflip_oracle``: more backward rotation is better."""

    def __init__(self, ledger: RewardLedger, rng: np.random.Generator, nq: int, dt: float, pitch_qpos: int = 2,
                 **noise):
        super().__init__(ledger, rng, **noise)
        self.pitch_qvel = nq + pitch_qpos  # sim_state is qpos ++ qvel
        self.dt = dt

    def step_rewards(self, queries: QueryPool) -> np.ndarray:
        if queries.sim_state is None or queries.sim_state.shape[-1] <= self.pitch_qvel:
            raise ValueError("the backflip teacher needs the simulator state (qpos ++ qvel) of each segment step")
        return -queries.sim_state[..., self.pitch_qvel] * self.dt  # [N, K, T] backward turn per step, radians

    def margin(self, length: int, rewards: np.ndarray) -> float | None:
        return float(np.abs(rewards.sum(-1)).mean())


@register("backflip")
def make_backflip(cfg: Mapping[str, Any], ledger: RewardLedger, rng: np.random.Generator,
                  run: Mapping[str, Any]) -> Teacher:
    """The backflip oracle for the run's env, which must be a MuJoCo body with a pitch hinge."""
    from pbrl.envs import make_env

    params = noise_params(cfg, extra=("pitch_qpos",))
    env_id = run.get("env_id", "Hopper-v5")
    env = make_env(env_id, run.get("env_kwargs"))
    model = getattr(env.unwrapped, "model", None)
    dt = getattr(env.unwrapped, "dt", None)
    env.close()
    pitch = params.pop("pitch_qpos", 2)
    if model is None or dt is None:
        raise ConfigError("teacher.name", f"the backflip teacher reads a MuJoCo torso's pitch; {env_id} is not MuJoCo")
    if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch < model.nq:
        raise ConfigError("teacher.pitch_qpos", f"got {pitch!r}; must be a qpos index of {env_id} (0..{model.nq - 1})")
    return BackflipTeacher(ledger, rng, nq=model.nq, dt=float(dt), pitch_qpos=pitch, **params)
