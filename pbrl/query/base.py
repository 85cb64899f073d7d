"""Candidate pools and the rule registry shared by every selection rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pbrl.buffers.episodes import EpisodeStore, QueryPool


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


def select(name: str, store: EpisodeStore, count: int, ctx: SelectionContext, k: int, length: int,
           large_batch: int, last_episodes: int | None = 100) -> QueryPool:
    """Draw a candidate pool for rule ``name`` and return the ``count`` queries it picks."""
    spec = RULES[name]
    pool = store.draw(count * large_batch if spec.uses_pool else count, k, length, ctx.rng, last_episodes)
    chosen = np.ascontiguousarray(spec.fn(pool, count, ctx), np.int64)  # a reversed view would trip torch
    if len(chosen) != count or len(np.unique(chosen)) != count or chosen.min() < 0 or chosen.max() >= len(pool):
        raise RuntimeError(f"selection rule {name!r} returned invalid indices {chosen.tolist()} for a pool of "
                           f"{len(pool)} and count {count}")
    return pool.take(chosen)
