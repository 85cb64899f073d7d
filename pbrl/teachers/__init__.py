"""Teachers, built by name from the ``teacher`` config group (``name: none`` trains on the env reward)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pbrl.errors import ConfigError
from pbrl.teachers.base import Answers, Teacher  # noqa: F401
from pbrl.teachers.ledger import RewardLedger
from pbrl.teachers.scripted import ScriptedTeacher

TEACHERS = ("none", "scripted", "human")
_SCRIPTED_FIELDS = {"beta", "gamma", "mistake", "skip", "equal"}


def make_teacher(cfg: Mapping[str, Any], ledger: RewardLedger, rng: np.random.Generator,
                 run: Mapping[str, Any] | None = None) -> Teacher:
    """The teacher the ``teacher`` config group names (not ``none``), checked field by field.

    ``run`` tells a human teacher where and what it labels: ``run_dir``, ``env_id``, ``env_kwargs``,
    ``k`` (segments per query), ``budget`` and ``seed``.
    """
    name = cfg.get("name")
    if name not in TEACHERS or name == "none":
        raise ConfigError("teacher.name", f"got {name!r}; allowed: {', '.join(TEACHERS)}")
    if name == "human":
        from pbrl.human.teacher import HumanTeacher  # the web stack loads only when a person teaches

        if run is None or run.get("run_dir") is None:
            raise ConfigError("teacher.name", "the human teacher needs a run directory for its label store")
        return HumanTeacher(cfg, run["run_dir"], run["env_id"], run.get("env_kwargs"), run["k"], run["budget"],
                            run.get("seed", 0))
    params = {k: v for k, v in cfg.items() if k not in ("name", "preset")}
    unknown = sorted(set(params) - _SCRIPTED_FIELDS)
    if unknown:
        raise ConfigError(f"teacher.{unknown[0]}", f"not a scripted-teacher setting; allowed: "
                                                   f"{', '.join(sorted(_SCRIPTED_FIELDS))}")
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"teacher.{key}", f"got {value!r}; must be a number")
    for key in ("mistake", "skip", "equal"):
        if not 0 <= params.get(key, 0) <= 1:
            raise ConfigError(f"teacher.{key}", f"got {params[key]!r}; must be a probability/fraction in [0, 1]")
    if not 0 < params.get("gamma", 1) <= 1:
        raise ConfigError("teacher.gamma", f"got {params['gamma']!r}; must be in (0, 1]")
    return ScriptedTeacher(ledger, rng, **params)
