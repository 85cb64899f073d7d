"""Tests for pbrl/intrinsic/state_entropy.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.intrinsic.state_entropy import RunningMeanStd, StateEntropy, knn_distance


def test_knn_distance_matches_brute_force_for_any_chunk_size():
    torch.manual_seed(0)
    pool = torch.randn(300, 4)
    states = pool[torch.randperm(300)[:20]]
    d = np.linalg.norm(states.numpy()[:, None] - pool.numpy()[None], axis=-1)
    expected = np.sort(d, axis=1)[:, 5]  # the state itself at 0, then its 5 nearest neighbours
    for chunk in (7, 64, 1000):
        np.testing.assert_allclose(knn_distance(states, pool, k=5, chunk=chunk).numpy(), expected, rtol=1e-5,
                                   atol=1e-5)


def test_knn_needs_more_states_than_k():
    with pytest.raises(ValueError, match="k=5"):
        knn_distance(torch.zeros(2, 3), torch.zeros(5, 3), k=5)


def test_running_stats_equal_the_statistics_of_all_data_seen():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (5, 50, 17, 200)]
    stats = RunningMeanStd(epsilon=1e-12)  # (almost) no prior count: only the data
    for b in batches:
        stats.update(torch.tensor(b))
    everything = np.concatenate(batches)
    assert stats.mean.item() == pytest.approx(everything.mean(), rel=1e-5)
    assert stats.var.item() == pytest.approx(everything.var(), rel=1e-4)


def test_state_entropy_rewards_isolated_states_more():
    torch.manual_seed(0)
    cluster = torch.randn(100, 2) * 0.1
    outlier = torch.tensor([[5.0, 5.0]])
    pool = torch.cat([cluster, outlier, outlier + 0.5, outlier - 0.5, outlier + 1.0, outlier - 1.0, outlier * 2])
    bonus = StateEntropy(k=5)(torch.cat([cluster[:1], outlier]), pool)
    assert bonus[1] > 5 * bonus[0]
