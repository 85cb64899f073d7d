"""Coverage-based selection: greedy k-center on flattened segment observations.

Each pick is the candidate farthest from everything labelled or picked so far, so the queries
spread over the state space. The hybrids first keep the more uncertain half of the pool.
"""

from __future__ import annotations

import numpy as np
import torch

from pbrl.query.base import QueryPool, SelectionContext, register
from pbrl.query.uncertainty import disagreement_scores, entropy_scores, top


def _min_distance(x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of ``x`` ``[P, d]`` to its nearest row of ``y`` ``[N, d]`` (chunked over y)."""
    best = torch.full((x.shape[0],), float("inf"))
    for start in range(0, y.shape[0], chunk):
        best = torch.minimum(best, torch.cdist(x, y[start:start + chunk]).min(1).values)
    return best


def greedy_kcenter(features: torch.Tensor, labelled: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of ``features`` ``[P, d]`` picked greedily to cover them, given the ``labelled`` rows."""
    features = features.float()
    chosen: list[int] = []
    if len(labelled):
        min_dist = _min_distance(features, torch.as_tensor(labelled, dtype=torch.float32))
    else:  # nothing labelled yet: the first pick is a random candidate
        first = int(rng.integers(features.shape[0]))
        chosen.append(first)
        min_dist = torch.cdist(features, features[first:first + 1]).squeeze(1)
        min_dist[first] = -1.0
    while len(chosen) < count:
        i = int(min_dist.argmax())
        chosen.append(i)
        min_dist = torch.minimum(min_dist, torch.cdist(features, features[i:i + 1]).squeeze(1))
        min_dist[chosen] = -1.0  # never pick twice (distance 0 could tie with duplicates)
    return np.asarray(chosen)


@register("kcenter")
def kcenter(pool: QueryPool, count: int, ctx: SelectionContext) -> np.ndarray:
    """Greedy k-center over the whole pool."""
    return greedy_kcenter(pool.features(), ctx.labelled_features, count, ctx.rng)


def _kcenter_on_top_half(pool: QueryPool, count: int, ctx: SelectionContext, scores: torch.Tensor) -> np.ndarray:
    half = top(scores, max(count, len(pool) // 2))
    return half[greedy_kcenter(pool.features()[torch.as_tensor(half)], ctx.labelled_features, count, ctx.rng)]


@register("kcenter_disagreement")
def kcenter_disagreement(pool: QueryPool, count: int, ctx: SelectionContext) -> np.ndarray:
    """Greedy k-center among the half of the pool with the largest ensemble disagreement."""
    return _kcenter_on_top_half(pool, count, ctx, disagreement_scores(pool, ctx))


@register("kcenter_entropy")
def kcenter_entropy(pool: QueryPool, count: int, ctx: SelectionContext) -> np.ndarray:
    """Greedy k-center among the half of the pool with the largest preference entropy."""
    return _kcenter_on_top_half(pool, count, ctx, entropy_scores(pool, ctx))
