"""Teachers, built by name from the ``teacher`` config group (``name: none`` trains on the env reward)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pbrl.errors import ConfigError
from pbrl.teachers.base import Answers, Teacher  # noqa: F401
from pbrl.teachers.ledger import RewardLedger
from pbrl.teachers.scripted import ScriptedTeacher

TEACHERS = ("none", "scripted", "backflip", "human")
_SCRIPTED_FIELDS = {"beta", "gamma", "mistake", "skip", "equal"}


def make_teacher(cfg: Mapping[str, Any], ledger: RewardLedger, rng: np.random.Generator,
                 run: Mapping[str, Any] | None = None) -> Teacher:
    """The teacher the ``teacher`` config group names (not ``none``), checked field by field.

    ``run`` tells a human teacher where and what it labels: ``run_dir``, ``env_id``, ``env_kwargs``,
    ``k`` (segments per query), ``budget``, ``seed``, the experiment's ``instruction`` and ``log``
    (the run's message function: stdout and ``train.log``).
    """
    name = cfg.get("name")
    if name not in TEACHERS or name == "none":
        raise ConfigError("teacher.name", f"got {name!r}; allowed: {', '.join(TEACHERS)}")
    if name == "human":
        from pbrl.human.teacher import HumanTeacher  # the web stack loads only when a person teaches

        if run is None or run.get("run_dir") is None:
            raise ConfigError("teacher.name", "the human teacher needs a run directory for its label store")
        if not cfg.get("instruction") and run.get("instruction"):
            cfg = {**cfg, "instruction": run["instruction"]}  # the experiment's words for its task
        return HumanTeacher(cfg, run["run_dir"], run["env_id"], run.get("env_kwargs"), run["k"], run["budget"],
                            run.get("seed", 0), log=run.get("log"))
    params = {k: v for k, v in cfg.items() if k not in ("name", "preset")}
    allowed = _SCRIPTED_FIELDS | ({"pitch_qpos"} if name == "backflip" else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"teacher.{unknown[0]}", f"not a {name}-teacher setting; allowed: "
                                                   f"{', '.join(sorted(allowed))}")
    for key, value in params.items():
        if key != "pitch_qpos" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"teacher.{key}", f"got {value!r}; must be a number")
    for key in ("mistake", "skip", "equal"):
        if not 0 <= params.get(key, 0) <= 1:
            raise ConfigError(f"teacher.{key}", f"got {params[key]!r}; must be a probability/fraction in [0, 1]")
    if not 0 < params.get("gamma", 1) <= 1:
        raise ConfigError("teacher.gamma", f"got {params['gamma']!r}; must be in (0, 1]")
    if name == "backflip":
        return _backflip_teacher(params, ledger, rng, run)
    return ScriptedTeacher(ledger, rng, **params)


def _backflip_teacher(params: dict, ledger: RewardLedger, rng: np.random.Generator,
                      run: Mapping[str, Any] | None) -> Teacher:
    """The backflip oracle for the run's env, which must be a MuJoCo body with a pitch hinge."""
    from pbrl.envs import make_env
    from pbrl.teachers.backflip import BackflipTeacher

    env_id = (run or {}).get("env_id", "Hopper-v5")
    env = make_env(env_id, (run or {}).get("env_kwargs"))
    model = getattr(env.unwrapped, "model", None)
    dt = getattr(env.unwrapped, "dt", None)
    env.close()
    pitch = params.pop("pitch_qpos", 2)
    if model is None or dt is None:
        raise ConfigError("teacher.name", f"the backflip teacher reads a MuJoCo torso's pitch; {env_id} is not MuJoCo")
    if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch < model.nq:
        raise ConfigError("teacher.pitch_qpos", f"got {pitch!r}; must be a qpos index of {env_id} (0..{model.nq - 1})")
    return BackflipTeacher(ledger, rng, nq=model.nq, dt=float(dt), pitch_qpos=pitch, **params)
