"""The B-Pref scripted teacher: labels from the true reward, with human-like irrationalities.

For a query of K segments with summed true rewards R_i (Lee et al. 2021, "B-Pref"):
1. skip: if max_i R_i <= thres_skip the query gets no label (it still uses budget); as in B-Pref
   only while thres_skip > 0, i.e. never on tasks whose recent returns are negative;
2. equal: if max_i R_i - min_i R_i < thres_equal the query is labelled "equal";
3. myopic: the ranking uses R_i = Σ_t γ^(T-1-t) r_t, recent steps weigh more;
4. rationality: β <= 0 ranks by R deterministically (ties: the earlier segment wins); β > 0
   samples a Plackett-Luce ranking with scores β·R (for K = 2: P(σ0 ≻ σ1) = sigmoid(β(R0 - R1)));
5. mistake: with probability ε the ranking is reversed (for K = 2: the label is flipped).
The thresholds are ``eps × margin`` with ``margin`` = mean true reward per step of the last 10
training episodes × T, recomputed at the start of every round. (The original code multiplies by
eps a second time after the first round; that is a bug and is not reproduced.) The equal
threshold uses |margin|, so that it stays a tolerance on tasks with negative rewards.
"""

from __future__ import annotations

import numpy as np

from typing import Any, Mapping

from pbrl.buffers.episodes import QueryPool
from pbrl.errors import ConfigError
from pbrl.teachers.base import Answers, Teacher, register
from pbrl.teachers.ledger import RewardLedger

NOISE_FIELDS = {"beta", "gamma", "mistake", "skip", "equal"}


class ScriptedTeacher(Teacher):
    """The oracle family (presets oracle, stoc/noisy, mistake, skip, equal, myopic in conf/teacher/)."""

    def __init__(self, ledger: RewardLedger, rng: np.random.Generator, beta: float = 0.0, gamma: float = 1.0,
                 mistake: float = 0.0, skip: float = 0.0, equal: float = 0.0, margin_episodes: int = 10):
        self.ledger = ledger
        self.rng = rng
        self.beta, self.gamma = beta, gamma
        self.eps_mistake, self.eps_skip, self.eps_equal = mistake, skip, equal
        self.margin_episodes = margin_episodes
        self.thres_skip, self.thres_equal = -np.inf, 0.0

    def step_rewards(self, queries: QueryPool) -> np.ndarray:
        """``[N, K, T]``: what the teacher judges each step by; here the true reward of its buffer slot."""
        return self.ledger.reward[queries.index]

    def margin(self, length: int, rewards: np.ndarray) -> float | None:
        """The scale of a segment's return the thresholds are fractions of (None: not known yet)."""
        per_step = self.ledger.mean_step_reward(self.margin_episodes)
        return None if per_step is None else per_step * length

    def _thresholds(self, length: int, rewards: np.ndarray) -> tuple[float, float]:
        """(skip, equal) thresholds for segments of ``length`` steps, from the latest training episodes."""
        margin = self.margin(length, rewards)
        if margin is None:  # no finished episode yet: nothing skipped or equal
            return -np.inf, 0.0
        # as in B-Pref, skipping needs a positive threshold: with negative returns "poor" has no meaning
        skip = self.eps_skip * margin if self.eps_skip > 0 and margin > 0 else -np.inf
        return skip, self.eps_equal * abs(margin)

    def answer(self, queries: QueryPool) -> Answers:
        """Label each query from the per-step rewards of its segments (``step_rewards``)."""
        rewards = self.step_rewards(queries)  # [N, K, T]
        n, k, length = rewards.shape
        self.thres_skip, self.thres_equal = self._thresholds(length, rewards)
        returns = rewards.sum(-1)  # [N, K]
        skipped = returns.max(-1) <= self.thres_skip
        equal = (returns.max(-1) - returns.min(-1)) < self.thres_equal
        weights = self.gamma ** np.arange(length - 1, -1, -1)  # γ^(T-1-t): the last step weighs 1
        myopic = (rewards * weights).sum(-1)  # [N, K]
        if self.beta > 0:  # Plackett-Luce sample by the Gumbel-max trick
            scores = self.beta * myopic + self.rng.gumbel(size=myopic.shape)
        else:
            scores = myopic
        ranking = np.argsort(-scores, axis=1, kind="stable")
        mistaken = self.rng.random(n) < self.eps_mistake
        ranking[mistaken] = ranking[mistaken, ::-1]
        return Answers(ranking=ranking, equal=equal & ~skipped, skipped=skipped)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def noise_params(cfg: Mapping[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The B-Pref noise settings of ``cfg`` (and the ``extra`` fields), checked field by field."""
    name = cfg.get("name")
    params = {k: v for k, v in cfg.items() if k not in ("name", "preset")}
    allowed = NOISE_FIELDS | set(extra)
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
    return params


@register("scripted")
def make_scripted(cfg: Mapping[str, Any], ledger: RewardLedger, rng: np.random.Generator,
                  run: Mapping[str, Any]) -> ScriptedTeacher:
    return ScriptedTeacher(ledger, rng, **noise_params(cfg))
