"""The episode store: the recent steps of every training env, from which queries are drawn.

Whatever agent collects (SAC's single env, PPO's N vector envs writing interleaved rows), each
step lands here with its simulator state, its episode id and its index in the episode. The query
rules draw segments of consecutive steps of one episode from it; the teacher's hidden true-reward
ledger and the k-NN exploration bonus are keyed to its rows. A segment is a ``[length]`` array of
rows: with one env those rows are consecutive, with N envs they are every N-th.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def restore_order(size: int, pos: int, old_capacity: int, new_capacity: int) -> tuple[np.ndarray, int]:
    """How to lay ``size`` saved slots of a ring of ``old_capacity`` into one of ``new_capacity``.

    Returns ``(order, pos)``: new slot i takes saved slot ``order[i]``, and writing resumes at
    ``pos``. The same capacity keeps the layout; a larger one lays the slots out oldest first.
    """
    if size > new_capacity:
        raise ValueError(f"the snapshot holds {size} transitions, more than this buffer's capacity {new_capacity}")
    if old_capacity == new_capacity:
        return np.arange(size), pos
    order = np.arange(size) if size < old_capacity else (np.arange(size) + pos) % size
    return order, size % new_capacity


@dataclass
class QueryPool:
    """Candidate queries of K segments of T steps each.

    ``index``: ``[P, K, T]`` episode-store rows; ``obs``: ``[P, K, T, obs_dim]``; ``action``:
    ``[P, K, T, action_dim]`` (copies, as torch tensors on the CPU); ``sim_state``: the simulator
    states of the chosen queries' steps, for teachers that re-render them.
    """

    index: np.ndarray
    obs: torch.Tensor
    action: torch.Tensor
    sim_state: np.ndarray | None = None  # [P, K, T, d] simulator states, filled for the chosen queries only

    def __len__(self) -> int:
        return len(self.index)

    def take(self, chosen: np.ndarray) -> "QueryPool":
        """The sub-pool of the queries at positions ``chosen``."""
        sel = torch.as_tensor(chosen)
        return QueryPool(self.index[chosen], self.obs[sel], self.action[sel],
                         None if self.sim_state is None else self.sim_state[chosen])

    def centre(self, margin: int) -> "QueryPool":
        """The same queries without ``margin`` steps at each end of every segment (SURF's teacher sees these)."""
        cut = slice(margin, self.index.shape[-1] - margin)
        return QueryPool(self.index[..., cut], self.obs[:, :, cut], self.action[:, :, cut],
                         None if self.sim_state is None else self.sim_state[:, :, cut])

    def features(self) -> torch.Tensor:
        """Flattened observations ``[P, K*T*obs_dim]``: the space k-center measures distances in."""
        return self.obs.reshape(len(self), -1)


class EpisodeStore:
    """A ring of ``capacity`` steps: obs, action, simulator state, episode id, step in episode, env index."""

    _COLUMNS = ("obs", "action", "sim_state", "episode", "step", "env")

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, sim_state_dim: int = 0):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.sim_state = np.zeros((capacity, sim_state_dim), np.float64)
        self.episode = np.zeros(capacity, np.int64)  # ids are unique across envs and grow with time
        self.step = np.zeros(capacity, np.int64)
        self.env = np.zeros(capacity, np.int16)
        self.pos = 0  # next row to write
        self.size = 0  # rows holding a step
        self._obs_t = torch.from_numpy(self.obs)
        self._action_t = torch.from_numpy(self.action)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, sim_state: np.ndarray | None, episode: np.ndarray,
            step: np.ndarray) -> np.ndarray:
        """Store one step of N envs (row i of each argument is env i); returns the N rows written."""
        n = len(obs)
        rows = (self.pos + np.arange(n)) % self.capacity if n > 1 else np.array([self.pos])
        self.obs[rows] = obs
        self.action[rows] = action
        if sim_state is not None and self.sim_state.shape[1]:
            self.sim_state[rows] = sim_state
        self.episode[rows] = episode
        self.step[rows] = step
        self.env[rows] = np.arange(n)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return rows

    def chronological(self) -> np.ndarray:
        """Rows from oldest to newest."""
        if self.size < self.capacity:
            return np.arange(self.size)
        return (np.arange(self.capacity) + self.pos) % self.capacity

    def episode_rows(self, episode: int) -> np.ndarray:
        """The stored rows of one episode (by id), in step order (its oldest steps may have left the ring)."""
        rows = np.flatnonzero(self.episode[:self.size] == episode)
        return rows[np.argsort(self.step[rows], kind="stable")]

    def observations(self) -> torch.Tensor:
        """Every stored observation ``[size, obs_dim]`` (a view: the k-NN bonus's pool)."""
        return self._obs_t[:self.size]

    def actions(self) -> torch.Tensor:
        """Every stored action ``[size, action_dim]`` (a view, row for row with ``observations``)."""
        return self._action_t[:self.size]

    def _episode_order(self, last_episodes: int | None) -> np.ndarray:
        """Rows of the last ``last_episodes`` episodes, grouped by episode, each episode's steps in order."""
        order = self.chronological()
        episode = self.episode[order]
        if last_episodes is not None:
            keep = np.isin(episode, np.unique(episode)[-last_episodes:])
            order, episode = order[keep], episode[keep]
        return order[np.argsort(episode, kind="stable")]  # one env: already in this order

    def segment_starts(self, length: int, last_episodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(order, starts)``: ``order[s : s + length]`` for each s in ``starts`` is a segment of one episode."""
        order = self._episode_order(last_episodes)
        if len(order) < length:
            return order, np.zeros(0, np.int64)
        episode, step = self.episode[order], self.step[order]
        p = np.arange(len(order) - length + 1)
        end = p + length - 1
        return order, p[(episode[p] == episode[end]) & (step[end] - step[p] == length - 1)]

    def can_segment(self, length: int, last_episodes: int | None = None) -> bool:
        """Whether one of the last ``last_episodes`` episodes holds ``length`` consecutive steps."""
        return len(self.segment_starts(length, last_episodes)[1]) > 0

    def sample_segments(self, length: int, count: int, rng: np.random.Generator,
                        last_episodes: int | None = None) -> np.ndarray:
        """``count`` random segments (with replacement) as rows ``[count, length]``; none crosses an episode end."""
        order, starts = self.segment_starts(length, last_episodes)
        if len(starts) == 0:
            raise ValueError(f"no stored episode holds a segment of {length} consecutive steps yet")
        chosen = rng.choice(starts, size=count, replace=True)
        return order[chosen[:, None] + np.arange(length)[None, :]]

    def draw(self, count: int, k: int, length: int, rng: np.random.Generator,
             last_episodes: int | None = 100) -> QueryPool:
        """``count`` random queries of ``k`` segments from the last ``last_episodes`` episodes."""
        index = self.sample_segments(length, count * k, rng, last_episodes).reshape(count, k, length)
        return QueryPool(index, torch.from_numpy(self.obs[index]), torch.from_numpy(self.action[index]))

    def state_dict(self) -> dict:
        n = self.size
        state = {k: torch.from_numpy(getattr(self, k)[:n].copy()) for k in self._COLUMNS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> np.ndarray:
        """Restore a store saved by state_dict into this one (its capacity may be larger: rows oldest first).

        Returns the row order used, for the ledger keyed to these rows."""
        n = state["size"]
        order, pos = restore_order(n, state["pos"], state["capacity"], self.capacity)
        for k in self._COLUMNS:
            getattr(self, k)[:n] = state[k].numpy()[order]
        self.size, self.pos = n, pos
        return order


class RunningEpisodes:
    """The episode each of N training envs is in: its id (unique over the run, as the store keeps it), its
    length so far and the return the agent was given in it; and how many episodes have ended."""

    def __init__(self, n_envs: int):
        self.id = np.zeros(n_envs, np.int64)
        self.length = np.zeros(n_envs, np.int64)
        self.agent_return = np.zeros(n_envs)  # NaN where a step's reward was (see Transitions.reward)
        self.next_id = 0  # ids handed to new episodes (a resumed run's cut episodes keep theirs)
        self.ended = 0

    def start(self, started: np.ndarray) -> None:
        """New episodes in the envs ``started`` flags, numbered in env order."""
        envs = np.flatnonzero(started)
        self.id[envs] = self.next_id + np.arange(len(envs))
        self.next_id += len(envs)
        self.length[envs], self.agent_return[envs] = 0, 0.0

    def step(self, reward: np.ndarray) -> None:
        self.agent_return += reward
        self.length += 1

    def state_dict(self) -> dict:
        return {"episode": self.ended, "next_episode_id": self.next_id}  # the snapshot's keys since issue 15

    def load_state_dict(self, state: dict) -> None:
        self.ended, self.next_id = state["episode"], state["next_episode_id"]
