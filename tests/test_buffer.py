"""Tests for ``pbrl/buffers/replay.py`` and ``pbrl/buffers/segments.py``.

Stored values encode where they came from (obs = transition number), so every check compares
against a plain Python model of what the ring buffer should hold.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pbrl.buffers.replay import ReplayBuffer
from pbrl.buffers.segments import sample_segments, valid_segment_starts

OBS_DIM, ACTION_DIM, SIM_DIM = 3, 2, 4


def _fill(buf: ReplayBuffer, n: int, start: int = 0) -> None:
    """Add transitions ``start .. start+n-1``; transition k has obs = k, action = -k, reward = 10k."""
    for k in range(start, start + n):
        buf.add(np.full(OBS_DIM, k, np.float32), np.full(ACTION_DIM, -k, np.float32), 10.0 * k, k % 7 == 0,
                k % 5 == 0, np.full(OBS_DIM, k + 0.5, np.float32), episode=k // 4, step=k % 4,
                sim_state=np.full(SIM_DIM, k, np.float64))


def _buffer(capacity: int = 10) -> ReplayBuffer:
    return ReplayBuffer(capacity, OBS_DIM, ACTION_DIM, SIM_DIM)


# -------------------------------------------------------------------------------- replay
def test_add_tracks_size_and_position():
    buf = _buffer(10)
    assert (len(buf), buf.pos) == (0, 0)
    _fill(buf, 3)
    assert (len(buf), buf.size, buf.pos) == (3, 3, 3)
    assert buf.obs[:3, 0].tolist() == [0, 1, 2]
    assert buf.terminated.dtype == np.float32 and buf.terminated[:3].tolist() == [1.0, 0.0, 0.0]
    assert buf.truncated[:3].tolist() == [True, False, False]
    assert buf.sim_state[2].tolist() == [2.0] * SIM_DIM


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


# ------------------------------------------------------------------------------ segments
# (episode id, length) in the order they are written; some shorter than the segment length, and
# id 4 reused with its step counter restarting, as after a resumed run starts a fresh episode
EPISODES = [(0, 7), (1, 3), (2, 12), (3, 2), (4, 6), (4, 9), (5, 15), (6, 4), (7, 11), (8, 6)]
SEGMENT = 5


def _episode_buffer(capacity: int) -> tuple[ReplayBuffer, list[tuple[int, int]]]:
    """The buffer, and the (episode, step) of each slot's transition as a Python list model."""
    buf = ReplayBuffer(capacity, 1, 1)
    written = []
    for ep, length in EPISODES:
        for t in range(length):
            buf.add(np.zeros(1), np.zeros(1), 0.0, t == length - 1, False, np.zeros(1), ep, t)
            written.append((ep, t))
    kept = written[-capacity:]
    slots = [(buf.pos + i) % capacity if len(written) > capacity else i for i in range(len(kept))]
    return buf, list(zip(slots, kept))


def _expected_starts(model, length, episodes=None) -> set[int]:
    """Slots where ``length`` chronological transitions share one episode and count up by one."""
    out = set()
    for p in range(len(model) - length + 1):
        window = [pair for _, pair in model[p:p + length]]
        ep0, t0 = window[0]
        if all(pair == (ep0, t0 + i) for i, pair in enumerate(window)) and (episodes is None or ep0 in episodes):
            out.add(model[p][0])
    return out


def _check_segment(buf: ReplayBuffer, idx: np.ndarray) -> None:
    assert len(set(buf.episode[idx].tolist())) == 1, f"segment {idx} crosses episodes"
    steps = buf.step[idx]
    np.testing.assert_array_equal(np.diff(steps), 1, err_msg=f"segment {idx} has non-consecutive steps")


@pytest.mark.parametrize("capacity", [200, 60])  # 75 transitions: unwrapped, and wrapped
def test_valid_segment_starts_are_exactly_the_windows_inside_one_episode(capacity):
    buf, model = _episode_buffer(capacity)
    assert (buf.size < buf.capacity) == (capacity == 200)
    starts = valid_segment_starts(buf, SEGMENT)
    assert len(starts) == len(set(starts.tolist()))
    assert set(starts.tolist()) == _expected_starts(model, SEGMENT)
    for s in starts:
        _check_segment(buf, (s + np.arange(SEGMENT)) % buf.capacity)


def test_wrapped_ring_has_segments_across_the_array_end():
    buf, _ = _episode_buffer(60)
    starts = valid_segment_starts(buf, SEGMENT)
    assert any(s + SEGMENT > buf.capacity for s in starts)  # a window running over slot 59 -> 0


@pytest.mark.parametrize("capacity", [200, 60])
def test_sampled_segments_never_cross_an_episode(capacity):
    buf, _ = _episode_buffer(capacity)
    segments = sample_segments(buf, SEGMENT, count=300, rng=np.random.default_rng(0))
    assert segments.shape == (300, SEGMENT) and segments.dtype.kind == "i"
    assert segments.min() >= 0 and segments.max() < buf.size
    for idx in segments:
        _check_segment(buf, idx)
    assert len({int(s[0]) for s in segments}) > 10  # the starts are spread, not one segment repeated


def test_last_episodes_restricts_to_the_most_recent():
    buf, model = _episode_buffer(60)
    starts = valid_segment_starts(buf, SEGMENT, last_episodes=2)
    assert set(starts.tolist()) == _expected_starts(model, SEGMENT, episodes={7, 8})
    segments = sample_segments(buf, SEGMENT, count=100, rng=np.random.default_rng(1), last_episodes=2)
    assert set(buf.episode[segments].ravel().tolist()) <= {7, 8}


def test_no_valid_segment():
    buf, _ = _episode_buffer(200)
    assert len(valid_segment_starts(buf, 16)) == 0  # the longest episode has 15 steps
    with pytest.raises(ValueError, match="16"):
        sample_segments(buf, 16, count=1, rng=np.random.default_rng(0))
    small = ReplayBuffer(10, 1, 1)
    for t in range(3):
        small.add(np.zeros(1), np.zeros(1), 0.0, False, False, np.zeros(1), 0, t)
    assert len(valid_segment_starts(small, 5)) == 0  # fewer transitions than one segment


def test_a_wrapped_buffer_loads_into_a_larger_one_oldest_first():
    small = ReplayBuffer(4, obs_dim=1, action_dim=1)
    for i in range(6):  # wraps: holds 2, 3, 4, 5 with the write position at slot 2
        small.add(np.array([i]), np.zeros(1), float(i), False, False, np.array([i + 1]), episode=0, step=i)
    large = ReplayBuffer(8, obs_dim=1, action_dim=1)
    large.load_state_dict(small.state_dict())
    assert (large.size, large.pos) == (4, 4)
    np.testing.assert_array_equal(large.reward[:4], [2, 3, 4, 5])
    large.add(np.array([6]), np.zeros(1), 6.0, False, False, np.array([7]), episode=0, step=6)
    np.testing.assert_array_equal(large.reward[large.chronological()], [2, 3, 4, 5, 6])
