"""What the run asks of an agent: the protocol every learner (SAC, PPO) implements.

The workspace steps ``n_envs`` training envs together and, per step, calls ``act`` on the batch of
observations, hands the resulting ``Transitions`` to ``observe``, and, once learning has begun,
calls ``learn`` with the current reward source; the agent decides itself whether that step is an
update (SAC: every step; PPO: when its rollout is full). When the learned reward changes the
workspace calls ``reward_changed``. Nothing in the workspace knows which agent it drives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from pbrl.reward.source import RewardSource


@dataclass
class Transitions:
    """One step of ``N`` training envs (N = 1 for SAC's single env)."""

    obs: np.ndarray  # [N, obs_dim] float32
    action: np.ndarray  # [N, action_dim] float32, in [-1, 1]
    reward: np.ndarray  # [N] float32: the reward source's step reward (the env's for teacher=none, else learned or 0;
    # NaN for an agent that does not take step rewards of a learned source: see Agent.takes_step_rewards)
    next_obs: np.ndarray  # [N, obs_dim]: the true successor, also where the episode ended (not the reset obs)
    terminated: np.ndarray  # [N] bool: the episode ended in a terminal state (no bootstrap)
    truncated: np.ndarray  # [N] bool: the time limit cut the episode (bootstrap from next_obs)


@dataclass(frozen=True)
class RewardChange:
    """What ``reward_changed`` is told: the new reward and, on the first change, PEBBLE's reset settings."""

    reward: RewardSource
    first: bool  # the first learned reward replaces the exploration bonus
    reset_updates: int = 0  # SAC after the first change: critic reset, then this many updates (feedback.reset_updates)
    reset_actor: bool = False  # SAC after the first change: also a fresh actor and temperature (pretrain.reset_actor)
    last: bool = False  # the feedback budget is used up: no further change will come


@runtime_checkable
class Agent(Protocol):
    """The learner the run drives; see the module docstring."""

    n_envs: int  # training envs stepped together
    num_updates: int  # gradient updates so far (0: no training statistics to log yet)
    # whether ``observe`` needs a non-env source's reward of each step (SAC stores it with the transition). An
    # agent that asks ``learn``'s source for its data's rewards itself (PPO, before each update) says False and
    # the run skips that source's per-step pass (a reward-model forward per env step, ~20 % of PrefPPO's time)
    takes_step_rewards: bool

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for ``[obs_dim]`` or ``[N, obs_dim]`` observations."""

    def observe(self, step: Transitions) -> None:
        """Store one step of transitions."""

    def learn(self, reward: RewardSource) -> None:
        """Called after every step once learning has begun: update if one is due, with rewards from ``reward``."""

    def reward_changed(self, change: RewardChange) -> None:
        """The learned reward was retrained: bring stored rewards up to date (and PEBBLE's first-round reset)."""

    def metrics(self) -> dict[str, float]:
        """Latest training statistics."""

    def state_dict(self) -> dict:
        """Everything needed to resume: networks, optimisers, stored data, counters."""

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` saved."""
