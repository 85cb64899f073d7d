"""Agents, built by name from the ``agent`` config group."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import torch

from pbrl.agents.base import Agent, RewardChange, Transitions  # noqa: F401
from pbrl.agents.ppo import PPO, PPOConfig
from pbrl.agents.sac import SAC, SACConfig
from pbrl.errors import ConfigError

# name -> (agent class, its config dataclass, what it takes from the run: steps, buffer_size -> kwargs);
# a new agent registers itself here
AGENTS: dict[str, tuple[type, type, Callable[[int, int], dict]]] = {
    "sac": (SAC, SACConfig, lambda steps, buffer_size: {"capacity": min(buffer_size, steps)}),  # its replay buffer
    "ppo": (PPO, PPOConfig, lambda steps, buffer_size: {"total_steps": steps}),  # learning-rate annealing
}

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
    _, config_cls, _ = AGENTS[name]
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
    out.check()
    return out


def make_agent(cfg: Mapping[str, Any], obs_dim: int, action_dim: int, device: torch.device, precision: str,
               steps: int = 1_000_000, buffer_size: int = 1_000_000) -> Agent:
    """Build the agent named by ``cfg.name`` for the given sizes, a run of ``steps`` env steps and its replay size."""
    config = agent_config(cfg)
    agent_cls, _, run_kwargs = AGENTS[config.name]
    return agent_cls(obs_dim, action_dim, config, device=device, precision=precision, **run_kwargs(steps, buffer_size))
