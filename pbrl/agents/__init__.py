"""Agents, built by name from the ``agent`` config group."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from pbrl.agents.sac import SAC, SACConfig
from pbrl.errors import ConfigError

# name -> (agent class, its config dataclass); a new agent registers itself here
AGENTS: dict[str, tuple[type, type]] = {"sac": (SAC, SACConfig)}

_POSITIVE_INTS = {"hidden_dim", "depth", "num_critics", "batch_size", "updates_per_step", "actor_update_every",
                  "target_update_every"}
_POSITIVE_FLOATS = {"actor_lr", "critic_lr", "alpha_lr", "init_alpha"}
_FLOATS = {"discount", "tau", "log_std_min", "log_std_max", "target_entropy"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def agent_config(cfg: Mapping[str, Any]):
    """Validate the ``agent`` config group and return its dataclass."""
    name = cfg.get("name", "sac")
    if name not in AGENTS:
        raise ConfigError("agent", f"unknown agent {name!r}; allowed: {', '.join(AGENTS)}")
    _, config_cls = AGENTS[name]
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(cfg) - set(fields))
    if unknown:
        raise ConfigError(f"agent.{unknown[0]}", f"not a {name} setting; allowed: {', '.join(fields)}")
    for key, value in cfg.items():
        if key in _POSITIVE_INTS and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"agent.{key}", f"got {value!r}; must be an integer > 0")
        if key in _POSITIVE_FLOATS and (not _is_number(value) or value <= 0):
            raise ConfigError(f"agent.{key}", f"got {value!r}; must be a number > 0")
        if key in _FLOATS and not (_is_number(value) or (key == "target_entropy" and value is None)):
            allowed = "a number or null (-action_dim)" if key == "target_entropy" else "a number"
            raise ConfigError(f"agent.{key}", f"got {value!r}; must be {allowed}")
    out = config_cls(**dict(cfg))
    if not 0 < out.tau <= 1:
        raise ConfigError("agent.tau", f"got {out.tau!r}; must be in (0, 1]")
    if not 0 <= out.discount <= 1:
        raise ConfigError("agent.discount", f"got {out.discount!r}; must be in [0, 1]")
    if out.log_std_min >= out.log_std_max:
        raise ConfigError("agent.log_std_min", f"got {out.log_std_min} >= log_std_max {out.log_std_max}; must be lower")
    return out


def make_agent(cfg: Mapping[str, Any], obs_dim: int, action_dim: int, device: torch.device, precision: str):
    """Build the agent named by ``cfg.name`` for the given observation and action sizes."""
    config = agent_config(cfg)
    agent_cls, _ = AGENTS[config.name]
    return agent_cls(obs_dim, action_dim, config, device=device, precision=precision)
