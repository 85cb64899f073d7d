"""Uncertainty-based selection: keep the candidates the reward ensemble is least sure about.

For a query of K segments each member gives a softmax over the K summed rewards (the probability
that each segment is the best). For K = 2 the first entry is the Bradley-Terry P(σ0 ≻ σ1), so
both scores below reduce to PEBBLE's pairwise definitions.
"""

from __future__ import annotations

import numpy as np
import torch

from pbrl.query.base import QueryPool, SelectionContext, register


def disagreement_scores(pool: QueryPool, ctx: SelectionContext) -> torch.Tensor:
    """Std across members of the choice probabilities, averaged over the K segments: ``[P]``."""
    probs = ctx.model.choice_probs(pool.obs, pool.action)  # [E, P, K]
    return probs.std(0, unbiased=False).mean(-1).cpu()


def entropy_scores(pool: QueryPool, ctx: SelectionContext) -> torch.Tensor:
    """Entropy of each member's choice distribution, averaged over members: ``[P]``."""
    probs = ctx.model.choice_probs(pool.obs, pool.action)  # [E, P, K]
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean(0).cpu()


def top(scores: torch.Tensor, count: int) -> np.ndarray:
    """Positions of the ``count`` largest scores."""
    return scores.topk(count).indices.numpy()


@register("disagreement")
def disagreement(pool: QueryPool, count: int, ctx: SelectionContext) -> np.ndarray:
    """The ``count`` candidates with the largest ensemble disagreement."""
    return top(disagreement_scores(pool, ctx), count)


@register("entropy")
def entropy(pool: QueryPool, count: int, ctx: SelectionContext) -> np.ndarray:
    """The ``count`` candidates with the largest mean preference entropy."""
    return top(entropy_scores(pool, ctx), count)
