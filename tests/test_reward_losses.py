"""Tests for pbrl/reward/losses.py."""

from __future__ import annotations

import math

import torch

from pbrl.reward.losses import bradley_terry_loss, plackett_luce_loss


def test_bradley_terry_gradient_raises_the_preferred_segment():
    score_0 = torch.tensor([0.3, -1.0], requires_grad=True)
    score_1 = torch.tensor([0.5, 2.0], requires_grad=True)
    bradley_terry_loss(score_0, score_1, torch.tensor([1.0, 1.0])).backward()  # first preferred
    assert (score_0.grad < 0).all() and (score_1.grad > 0).all()  # descent raises R0, lowers R1


def test_equal_labels_pull_the_two_scores_together():
    score_0 = torch.tensor([2.0], requires_grad=True)
    score_1 = torch.tensor([-1.0], requires_grad=True)
    bradley_terry_loss(score_0, score_1, torch.tensor([0.5])).backward()
    assert score_0.grad.item() > 0 > score_1.grad.item()
    expected = -(0.5 * math.log(torch.sigmoid(torch.tensor(3.0)).item())
                 + 0.5 * math.log(torch.sigmoid(torch.tensor(-3.0)).item()))
    assert math.isclose(bradley_terry_loss(torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([0.5])).item(),
                        expected, rel_tol=1e-6)


def test_plackett_luce_with_two_segments_is_bradley_terry():
    torch.manual_seed(0)
    scores = torch.randn(3, 16, 2)  # an ensemble of 3, 16 pairs
    first_wins = torch.randint(0, 2, (16,))
    ranking = torch.stack([1 - first_wins, first_wins], dim=1)  # best first
    target = (ranking[:, 0] == 0).float()  # 1 where segment 0 ranks first
    pl = plackett_luce_loss(scores, ranking)
    bt = bradley_terry_loss(scores[..., 0], scores[..., 1], target)
    torch.testing.assert_close(pl, bt)


def test_plackett_luce_matches_a_hand_computed_three_way_ranking():
    scores = torch.tensor([[1.0, 2.0, 0.5]])
    ranking = torch.tensor([[1, 0, 2]])  # segment 1 best, then 0, then 2
    e = [math.exp(s) for s in (1.0, 2.0, 0.5)]
    expected = -math.log(e[1] / (e[0] + e[1] + e[2]) * e[0] / (e[0] + e[2]))
    assert math.isclose(plackett_luce_loss(scores, ranking).item(), expected, rel_tol=1e-6)
