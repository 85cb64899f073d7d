"""Preference likelihoods over segment returns: Bradley-Terry (pairs) and Plackett-Luce (rankings).

A segment's score is its summed predicted reward R(σ) = Σ_t r(s_t, a_t). Leading dimensions are
free, so an ensemble's scores ``[E, N, ...]`` train every member in one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(score_0: torch.Tensor, score_1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of P(σ0 ≻ σ1) = sigmoid(R0 - R1) against ``target``.

    ``target`` is the probability that the first segment is preferred: 1 (first), 0 (second),
    0.5 (equal). Note the original B-Pref code uses the opposite convention (label 1 = second).
    Shapes: ``score_0``, ``score_1``: ``[..., N]``; ``target``: ``[N]`` or broadcastable.
    """
    logits = score_0 - score_1
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype).expand_as(logits))


def plackett_luce_loss(scores: torch.Tensor, ranking: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of rankings under the Plackett-Luce model.

    ``scores``: ``[..., N, K]`` segment scores; ``ranking``: ``[N, K]`` segment indices from best
    to worst. P(π) = Π_k exp R_π(k) / Σ_{j>=k} exp R_π(j); for K = 2 this is Bradley-Terry.
    """
    ordered = scores.gather(-1, ranking.expand(*scores.shape[:-2], *ranking.shape))  # best first
    # log Σ_{j>=k} exp R_π(j) for every k: a reversed cumulative logsumexp
    tail = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
    return -(ordered - tail).sum(-1).mean()


def preference_loss(scores: torch.Tensor, ranking: torch.Tensor, equal: torch.Tensor) -> torch.Tensor:
    """The reward model's loss on a batch of labelled queries of K segments each.

    Ranked queries use the Plackett-Luce likelihood (Bradley-Terry when K = 2); a query labelled
    "equal" trains the softmax over its K scores towards uniform, which for K = 2 is
    Bradley-Terry against the target 0.5. ``scores``: ``[..., N, K]``; ``ranking``: ``[N, K]``
    best first; ``equal``: ``[N]`` bool. Returns the mean over queries (and leading dims).
    """
    ordered = scores.gather(-1, ranking.expand_as(scores))  # ranking [N, K] or [..., N, K]
    tail = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
    ranked_nll = -(ordered - tail).sum(-1)  # [..., N]
    equal_nll = -torch.log_softmax(scores, dim=-1).mean(-1)  # cross-entropy against a uniform target
    return torch.where(equal, equal_nll, ranked_nll).mean()
