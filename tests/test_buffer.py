"""Tests for ``pbrl/buffers/replay.py`` (SAC's replay buffer; the episode store has tests/test_episodes.py).

Stored values encode where they came from (obs = transition number), so every check compares
against a plain Python model of what the ring buffer should hold.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pbrl.buffers.replay import ReplayBuffer

OBS_DIM, ACTION_DIM = 3, 2


def _fill(buf: ReplayBuffer, n: int, start: int = 0) -> None:
    """Add transitions ``start .. start+n-1``; transition k has obs = k, action = -k, reward = 10k."""
    for k in range(start, start + n):
        buf.add(np.full(OBS_DIM, k, np.float32), np.full(ACTION_DIM, -k, np.float32), 10.0 * k, k % 7 == 0,
                np.full(OBS_DIM, k + 0.5, np.float32))


def _buffer(capacity: int = 10) -> ReplayBuffer:
    return ReplayBuffer(capacity, OBS_DIM, ACTION_DIM)


# -------------------------------------------------------------------------------- replay
def test_add_tracks_size_and_position():
    buf = _buffer(10)
    assert (len(buf), buf.pos) == (0, 0)
    _fill(buf, 3)
    assert (len(buf), buf.size, buf.pos) == (3, 3, 3)
    assert buf.obs[:3, 0].tolist() == [0, 1, 2]
    assert buf.terminated.dtype == np.float32 and buf.terminated[:3].tolist() == [1.0, 0.0, 0.0]


def test_wrap_around_overwrites_the_oldest():
    buf = _buffer(10)
    _fill(buf, 23)  # transitions 13..22 survive
    assert (buf.size, buf.pos) == (10, 3)
    assert sorted(buf.obs[:, 0].tolist()) == list(range(13, 23))
    assert buf.obs[buf.chronological(), 0].tolist() == list(range(13, 23))  # oldest -> newest
    assert buf.reward[buf.chronological()].tolist() == [10.0 * k for k in range(13, 23)]


def test_chronological_before_and_exactly_at_capacity():
    buf = _buffer(5)
    _fill(buf, 3)
    assert buf.chronological().tolist() == [0, 1, 2]
    _fill(buf, 2, start=3)
    assert buf.chronological().tolist() == [0, 1, 2, 3, 4]
    _fill(buf, 1, start=5)
    assert buf.chronological().tolist() == [1, 2, 3, 4, 0]


def test_sample_shapes_dtypes_and_row_consistency():
    buf = _buffer(10)
    _fill(buf, 6)
    batch = buf.sample(64, generator=torch.Generator().manual_seed(0))
    assert batch.obs.shape == (64, OBS_DIM) and batch.next_obs.shape == (64, OBS_DIM)
    assert batch.action.shape == (64, ACTION_DIM)
    assert batch.reward.shape == (64,) and batch.terminated.shape == (64,)
    assert all(t.dtype == torch.float32 for t in batch)
    k = batch.obs[:, 0]
    assert set(k.tolist()) <= set(range(6))  # only filled slots
    assert len(set(k.tolist())) > 3  # and not one slot over and over
    torch.testing.assert_close(batch.action[:, 0], -k)  # columns of one row stay together
    torch.testing.assert_close(batch.reward, 10 * k)
    torch.testing.assert_close(batch.next_obs[:, 0], k + 0.5)
    torch.testing.assert_close(batch.terminated, (k % 7 == 0).float())


def test_sample_sees_writes_made_after_construction():
    # the torch views must alias the numpy storage, not a copy taken at construction
    buf = _buffer(4)
    _fill(buf, 4)
    buf.reward[:] = 123.0
    assert buf.sample(8).reward.tolist() == [123.0] * 8


def test_relabel_rewrites_every_reward_in_chunks():
    buf = _buffer(50)
    _fill(buf, 23)
    chunks = []

    def reward_fn(obs, action):
        chunks.append(len(obs))
        return obs.sum(-1) + 2 * action[:, 0]  # 3k - 2k = k

    buf.relabel(reward_fn, batch_size=7)
    assert chunks == [7, 7, 7, 2]
    assert buf.reward[:23].tolist() == [float(k) for k in range(23)]
    assert not buf.reward[23:].any()  # unused slots untouched


def test_relabel_covers_a_wrapped_ring_and_accepts_column_outputs():
    buf = _buffer(10)
    _fill(buf, 27)
    buf.relabel(lambda obs, action: obs[:, :1] * 2, batch_size=3)  # [N, 1] output is flattened
    np.testing.assert_array_equal(buf.reward, 2 * buf.obs[:, 0])
    batch = buf.sample(16, torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch.reward, 2 * batch.obs[:, 0])  # sampling sees the new rewards


def test_state_dict_round_trip():
    buf = _buffer(10)
    _fill(buf, 13)
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    blob.seek(0)
    other = _buffer(10)
    other.load_state_dict(torch.load(blob, weights_only=False))
    assert (other.pos, other.size) == (buf.pos, buf.size)
    for name in ReplayBuffer._COLUMNS:
        np.testing.assert_array_equal(getattr(other, name), getattr(buf, name), err_msg=name)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for a, b in zip(buf.sample(32, g1), other.sample(32, g2)):
        torch.testing.assert_close(a, b)
    _fill(buf, 1, start=13)
    _fill(other, 1, start=13)  # writing continues at the restored position
    np.testing.assert_array_equal(other.obs, buf.obs)


def test_state_dict_of_a_partly_filled_buffer_holds_only_the_filled_part():
    buf = _buffer(100)
    _fill(buf, 5)
    state = buf.state_dict()
    assert state["obs"].shape == (5, OBS_DIM)
    other = _buffer(100)
    other.load_state_dict(state)
    assert other.size == 5 and other.obs[:5, 0].tolist() == [0, 1, 2, 3, 4]
    smaller = _buffer(50)  # a different capacity is fine while the stored transitions fit
    smaller.load_state_dict(state)
    assert (smaller.size, smaller.pos) == (5, 5) and smaller.obs[:5, 0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="capacity"):
        _buffer(4).load_state_dict(state)


def test_bad_capacity():
    with pytest.raises(ValueError):
        ReplayBuffer(0, OBS_DIM, ACTION_DIM)


def test_a_wrapped_buffer_loads_into_a_larger_one_oldest_first():
    small = ReplayBuffer(4, obs_dim=1, action_dim=1)
    for i in range(6):  # wraps: holds 2, 3, 4, 5 with the write position at slot 2
        small.add(np.array([i]), np.zeros(1), float(i), False, np.array([i + 1]))
    large = ReplayBuffer(8, obs_dim=1, action_dim=1)
    large.load_state_dict(small.state_dict())
    assert (large.size, large.pos) == (4, 4)
    np.testing.assert_array_equal(large.reward[:4], [2, 3, 4, 5])
    large.add(np.array([6]), np.zeros(1), 6.0, False, np.array([7]))
    np.testing.assert_array_equal(large.reward[large.chronological()], [2, 3, 4, 5, 6])
