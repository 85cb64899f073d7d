"""Tests for ``pbrl/buffers/episodes.py``: the episode store that queries are drawn from.

Stored values encode where they came from (obs = env * 1000 + episode * 100 + step), so every
check compares against a plain Python model; with N envs the rows of one episode are interleaved
with the others' and a segment must still be consecutive steps of one episode.
"""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.buffers.episodes import EpisodeStore

SEGMENT = 5


def _write(store: EpisodeStore, lengths: list[list[int]], sim_dim: int = 0) -> list[tuple[int, int, int]]:
    """Step N envs together; env i runs episodes of the lengths ``lengths[i]`` one after another.

    Returns the (env, episode id, step) of every row written, in write order. Episode ids are handed
    out as the run does: a fresh id whenever an env starts an episode.
    """
    n = len(lengths)
    queue = [list(ls) for ls in lengths]
    next_id, ep, step, left = 0, np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    written = []
    while any(queue) or left.any():
        for i in range(n):
            if left[i] == 0:
                ep[i], step[i], left[i] = next_id, 0, queue[i].pop(0) if queue[i] else 10**6
                next_id += 1
        obs = (np.arange(n) * 1000 + ep * 100 + step).astype(np.float32)[:, None]
        sim = np.repeat(obs.astype(np.float64), sim_dim, axis=1) if sim_dim else None
        store.add(obs, -obs, sim, ep.copy(), step.copy())
        written += [(i, int(ep[i]), int(step[i])) for i in range(n)]
        step += 1
        left -= 1
        if not any(queue) and (left > 10**5).all():
            break
    return written


def _check(store: EpisodeStore, rows: np.ndarray) -> None:
    episode, step, env = store.episode[rows], store.step[rows], store.env[rows]
    assert len(set(episode.tolist())) == 1, f"segment {rows} crosses episodes {episode}"
    assert len(set(env.tolist())) == 1, f"segment {rows} mixes envs {env}"
    np.testing.assert_array_equal(np.diff(step), 1, err_msg=f"segment {rows}: steps {step} not consecutive")
    np.testing.assert_array_equal(store.obs[rows, 0], env * 1000 + episode * 100 + step)  # rows hold what was written


def _expected(written, capacity: int, length: int, last_episodes=None) -> set[tuple[int, int]]:
    """(episode, first step) of every window of ``length`` consecutive steps of one episode still stored."""
    kept = written[-capacity:]
    by_episode: dict[int, list[int]] = {}
    for _, e, t in kept:
        by_episode.setdefault(e, []).append(t)
    recent = sorted(by_episode)[-last_episodes:] if last_episodes else sorted(by_episode)
    out = set()
    for e in recent:
        steps = by_episode[e]
        for p in range(len(steps) - length + 1):
            if steps[p + length - 1] - steps[p] == length - 1:
                out.add((e, steps[p]))
    return out


def _starts(store: EpisodeStore, length: int, last_episodes=None) -> set[tuple[int, int]]:
    order, starts = store.segment_starts(length, last_episodes)
    return {(int(store.episode[order[s]]), int(store.step[order[s]])) for s in starts}


LENGTHS_1 = [[7, 3, 12, 2, 6, 9, 15, 4, 11, 6]]
LENGTHS_3 = [[7, 3, 12, 8], [20, 4, 9], [2, 2, 30, 5]]


@pytest.mark.parametrize("lengths", [LENGTHS_1, LENGTHS_3], ids=["1 env", "3 envs"])
@pytest.mark.parametrize("capacity", [400, 61])  # unwrapped, and wrapped mid-episode
def test_segment_starts_are_exactly_the_windows_inside_one_episode(lengths, capacity):
    store = EpisodeStore(capacity, 1, 1)
    written = _write(store, lengths)
    assert (store.size < store.capacity) == (capacity == 400)
    assert _starts(store, SEGMENT) == _expected(written, capacity, SEGMENT)


@pytest.mark.parametrize("lengths", [LENGTHS_1, LENGTHS_3], ids=["1 env", "3 envs"])
@pytest.mark.parametrize("capacity", [400, 61])
def test_sampled_segments_never_cross_an_episode_even_with_interleaved_envs(lengths, capacity):
    store = EpisodeStore(capacity, 1, 1)
    _write(store, lengths)
    segments = store.sample_segments(SEGMENT, count=300, rng=np.random.default_rng(0))
    assert segments.shape == (300, SEGMENT) and segments.min() >= 0 and segments.max() < store.size
    for rows in segments:
        _check(store, rows)
    assert len({int(s[0]) for s in segments}) > 10  # spread over many starts


def test_with_one_env_a_segment_is_consecutive_rows_and_may_wrap_the_ring():
    store = EpisodeStore(61, 1, 1)
    _write(store, LENGTHS_1)
    order, starts = store.segment_starts(SEGMENT)
    rows = order[starts[:, None] + np.arange(SEGMENT)]
    np.testing.assert_array_equal(rows, (rows[:, :1] + np.arange(SEGMENT)) % 61)
    assert any(r[0] + SEGMENT > 61 for r in rows)  # a window over the array's end


def test_with_three_envs_a_segment_takes_every_third_row():
    store = EpisodeStore(400, 1, 1)
    _write(store, LENGTHS_3)
    rows = store.sample_segments(SEGMENT, count=50, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(np.diff(rows, axis=1), 3)


def test_last_episodes_restricts_to_the_most_recent():
    store = EpisodeStore(400, 1, 1)
    written = _write(store, LENGTHS_3)
    assert _starts(store, SEGMENT, last_episodes=2) == _expected(written, 400, SEGMENT, last_episodes=2)
    newest = sorted({e for _, e, _ in written})[-2:]
    pool = store.draw(20, 2, SEGMENT, np.random.default_rng(2), last_episodes=2)
    assert set(store.episode[pool.index].ravel().tolist()) <= set(newest)
    assert pool.obs.shape == (20, 2, SEGMENT, 1) and pool.action.shape == (20, 2, SEGMENT, 1)
    np.testing.assert_array_equal(pool.obs.numpy(), store.obs[pool.index])


def test_no_segment_yet():
    store = EpisodeStore(400, 1, 1)
    _write(store, LENGTHS_3)
    assert not store.can_segment(31) and store.can_segment(30)
    with pytest.raises(ValueError, match="31"):
        store.sample_segments(31, count=1, rng=np.random.default_rng(0))


def test_state_dict_round_trip_into_a_larger_store_keeps_segments_and_returns_the_order():
    store = EpisodeStore(61, 1, 1, sim_state_dim=2)
    _write(store, LENGTHS_3, sim_dim=2)
    larger = EpisodeStore(200, 1, 1, sim_state_dim=2)
    order = larger.load_state_dict(store.state_dict())
    assert (larger.size, larger.pos) == (61, 61)
    np.testing.assert_array_equal(larger.obs[:61], store.obs[store.chronological()])  # oldest first
    np.testing.assert_array_equal(order, store.chronological())
    assert _starts(larger, SEGMENT) == _starts(store, SEGMENT)
    np.testing.assert_array_equal(larger.sim_state[:61, 0], larger.obs[:61, 0])
