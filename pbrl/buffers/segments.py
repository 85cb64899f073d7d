"""Fixed-length segments of stored experience that never cross an episode boundary."""

from __future__ import annotations

import numpy as np

from pbrl.buffers.replay import ReplayBuffer


def valid_segment_starts(buffer: ReplayBuffer, length: int, last_episodes: int | None = None) -> np.ndarray:
    """Buffer indices ``i`` such that slots ``i .. i+length-1`` hold consecutive steps of one episode.

    Works on the ring buffer in chronological order, so a window may wrap around the end of the
    arrays. ``last_episodes`` restricts the starts to the most recent episodes (PEBBLE uses 100).
    """
    order = buffer.chronological()  # [N] oldest -> newest
    if len(order) < length:
        return np.zeros(0, np.int64)
    episode = buffer.episode[order]
    step = buffer.step[order]
    # a window starting at chronological position p is valid when the step counter rises by one
    # across all of it within a single episode: episode[p] == episode[p+L-1] and step[p+L-1] - step[p] == L-1
    p = np.arange(len(order) - length + 1)
    end = p + length - 1
    ok = (episode[p] == episode[end]) & (step[end] - step[p] == length - 1)
    if last_episodes is not None:
        recent = np.unique(episode)[-last_episodes:]
        ok &= np.isin(episode[p], recent)
    return order[p[ok]]


def sample_segments(buffer: ReplayBuffer, length: int, count: int, rng: np.random.Generator,
                    last_episodes: int | None = None) -> np.ndarray:
    """``count`` random valid segments as buffer indices ``[count, length]`` (wrapping the ring)."""
    starts = valid_segment_starts(buffer, length, last_episodes)
    if len(starts) == 0:
        raise ValueError(f"no stored episode holds a segment of {length} consecutive steps yet")
    chosen = rng.choice(starts, size=count, replace=True)
    return (chosen[:, None] + np.arange(length)[None, :]) % buffer.capacity
