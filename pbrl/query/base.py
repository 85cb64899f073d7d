"""Candidate pools and the rule registry shared by every selection rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from pbrl.buffers.replay import ReplayBuffer
from pbrl.buffers.segments import sample_segments


@dataclass
class QueryPool:
    """Candidate queries of K segments of T steps each.

    ``index``: ``[P, K, T]`` replay-buffer slots; ``obs``: ``[P, K, T, obs_dim]``; ``action``:
    ``[P, K, T, action_dim]`` (copies, as torch tensors on the CPU); ``sim_state``: the simulator
    states of the chosen queries' steps, for teachers that re-render them.
    """

    index: np.ndarray
    obs: torch.Tensor
    action: torch.Tensor
    sim_state: np.ndarray | None = None  # [P, K, T, d] simulator states, filled for the chosen queries only

    def __len__(self) -> int:
        return len(self.index)

    def take(self, chosen: np.ndarray) -> "QueryPool":
        """The sub-pool of the queries at positions ``chosen``."""
        sel = torch.as_tensor(chosen)
        return QueryPool(self.index[chosen], self.obs[sel], self.action[sel],
                         None if self.sim_state is None else self.sim_state[chosen])

    def features(self) -> torch.Tensor:
        """Flattened observations ``[P, K*T*obs_dim]``: the space k-center measures distances in."""
        return self.obs.reshape(len(self), -1)


@dataclass
class SelectionContext:
    """What a rule may look at besides the pool."""

    model: object  # the RewardModel: ``choice_probs(obs, action) -> [E, P, K]``
    labelled_features: np.ndarray  # [N, K*T*obs_dim] of the queries labelled so far
    rng: np.random.Generator


Rule = Callable[[QueryPool, int, SelectionContext], np.ndarray]


@dataclass(frozen=True)
class RuleSpec:
    fn: Rule
    uses_pool: bool  # True: wants count × large_batch candidates; False: exactly count


RULES: dict[str, RuleSpec] = {}


def register(name: str, uses_pool: bool = True) -> Callable[[Rule], Rule]:
    """Decorator: make ``fn`` selectable as ``query.selection=<name>``."""
    def wrap(fn: Rule) -> Rule:
        if name in RULES:
            raise ValueError(f"query selection rule {name!r} is registered twice")
        RULES[name] = RuleSpec(fn, uses_pool)
        return fn
    return wrap


def draw_pool(buffer: ReplayBuffer, size: int, k: int, length: int, rng: np.random.Generator,
              last_episodes: int | None = 100) -> QueryPool:
    """``size`` random queries of ``k`` segments from the last ``last_episodes`` episodes of ``buffer``."""
    index = sample_segments(buffer, length, size * k, rng, last_episodes).reshape(size, k, length)
    return QueryPool(index, torch.from_numpy(buffer.obs[index]), torch.from_numpy(buffer.action[index]))


def select(name: str, buffer: ReplayBuffer, count: int, ctx: SelectionContext, k: int, length: int,
           large_batch: int, last_episodes: int | None = 100) -> QueryPool:
    """Draw a candidate pool for rule ``name`` and return the ``count`` queries it picks."""
    spec = RULES[name]
    pool = draw_pool(buffer, count * large_batch if spec.uses_pool else count, k, length, ctx.rng, last_episodes)
    chosen = np.ascontiguousarray(spec.fn(pool, count, ctx), np.int64)  # a reversed view would trip torch
    if len(chosen) != count or len(np.unique(chosen)) != count or chosen.min() < 0 or chosen.max() >= len(pool):
        raise RuntimeError(f"selection rule {name!r} returned invalid indices {chosen.tolist()} for a pool of "
                           f"{len(pool)} and count {count}")
    return pool.take(chosen)
