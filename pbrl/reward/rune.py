"""RUNE (Liang et al., ICLR 2022): explore where the reward ensemble disagrees.

The agent's reward is the learned reward (the ensemble mean) plus ``β_t`` times the standard deviation
of the members' per-step rewards, with ``β_t = rune_beta × (1 − rune_decay)^t`` at env step ``t``.
Defaults from the official code (github.com/rll-research/rune): ``config/agent/sac_explore.yaml``
(``beta_schedule: linear_decay``, ``beta_init: 0.05``, ``beta_decay: 0.00001``), applied in
``agent/sac_explore.py`` (``update_critic``: ``ext_reward + beta(step) * int_reward``), where the
intrinsic reward is ``np.std`` over the members (``reward_model_explore.py: r_hat_std_batch``).

RUNE stores the mean and the std with each transition and applies ``β_t`` at update time; here the
wrapper is a per-batch reward source, so SAC asks it for every sampled batch (and PPO for each
rollout) with the members as they are now: the same numbers, one reward-model pass per batch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from pbrl.errors import ConfigError, check_choice
from pbrl.reward.source import LearnedReward, RewardSource

BONUSES = ("none", "rune")


class RuneReward(RewardSource):
    """The learned reward plus the decaying ensemble-disagreement bonus; see the module docstring."""

    name, per_batch = "learned+rune", True

    def __init__(self, learned: LearnedReward, beta: float, decay: float, step: Callable[[], int]):
        self.learned, self.beta, self.decay, self._step = learned, beta, decay, step

    @property
    def version(self) -> int:
        return self.learned.version

    def beta_at(self, step: int) -> float:
        """``β_t`` at env step ``step``."""
        return self.beta * (1.0 - self.decay) ** step

    @torch.inference_mode()
    def parts(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(learned reward, bonus)`` of each step: the scaled ensemble mean, and ``β_t`` × the members'
        standard deviation (the population std, as ``np.std``)."""
        model = self.learned.model
        members = model.member_rewards(obs.to(model.device), action.to(model.device))  # [E, B]
        bonus = self.beta_at(self._step()) * members.std(0, unbiased=False)
        return (members.mean(0) * model.cfg.scale).to(obs.device), bonus.to(obs.device)

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if not self.version:
            return torch.zeros(obs.shape[0], device=obs.device)
        mean, bonus = self.parts(obs, action)
        return mean + bonus

    def step_reward(self, obs: np.ndarray, action: np.ndarray, env_reward: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.float32)  # per batch: never stored


def agent_reward(cfg: Mapping[str, Any], learned: LearnedReward, step: Callable[[], int]) -> RewardSource:
    """The reward the agent learns from after pretraining: the learned one, or with ``reward.bonus`` on top."""
    reward = cfg.get("reward", {}) or {}
    bonus = reward.get("bonus", "none")
    check_choice("reward.bonus", bonus, BONUSES)
    if bonus == "none":
        return learned
    beta, decay = reward.get("rune_beta", 0.05), reward.get("rune_decay", 1e-5)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
        raise ConfigError("reward.rune_beta", f"got {beta!r}; must be a number >= 0")
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise ConfigError("reward.rune_decay", f"got {decay!r}; must be in [0, 1)")
    return RuneReward(learned, float(beta), float(decay), step)
