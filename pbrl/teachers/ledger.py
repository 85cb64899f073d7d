"""The true reward, kept where only the teacher can read it.

In preference mode the training envs hand their reward to ``RewardLedger.record`` and the agent's
side never sees it: the agent learns from a reward source (the k-NN bonus, then the learned model)
and an accidental use of the env's reward field reads NaN. The ledger is keyed to the episode
store's rows (``record`` takes the rows the store wrote), so a query segment's rows also index its
true rewards, whether one env or N interleaved envs wrote them.
"""

from __future__ import annotations

import numpy as np


class RewardLedger:
    """True per-step rewards by episode-store row, plus returns of finished training episodes."""

    def __init__(self, capacity: int, n_envs: int = 1):
        self.capacity = capacity
        self.reward = np.zeros(capacity, np.float64)
        self.size = 0
        self.episode_returns: list[float] = []  # finished training episodes in the order they ended
        self.episode_lengths: list[int] = []
        self._return = np.zeros(n_envs)  # running episode of each env
        self.last_return = np.zeros(n_envs)  # each env's latest finished episode
        self._length = np.zeros(n_envs, np.int64)

    def record(self, rows: np.ndarray, reward: np.ndarray, episode_over: np.ndarray) -> None:
        """Store one step of N envs' rewards at the store rows they were written to."""
        self.reward[rows] = reward
        self.size = min(self.size + len(rows), self.capacity)
        self._return += reward
        self._length += 1
        for i in np.flatnonzero(episode_over):
            self.episode_returns.append(float(self._return[i]))
            self.episode_lengths.append(int(self._length[i]))
            self.last_return[i] = self._return[i]
            self._return[i], self._length[i] = 0.0, 0

    def drop_partial_episodes(self) -> None:
        """Forget the running episodes (a resumed run starts fresh ones)."""
        self._return[:], self._length[:] = 0.0, 0

    def mean_step_reward(self, episodes: int = 10) -> float | None:
        """Mean true reward per step over the last ``episodes`` finished episodes (None before the first)."""
        if not self.episode_returns:
            return None
        return float(np.sum(self.episode_returns[-episodes:]) / np.sum(self.episode_lengths[-episodes:]))

    def state_dict(self) -> dict:
        return {"reward": self.reward[:self.size].copy(), "size": self.size, "capacity": self.capacity,
                "episode_returns": list(self.episode_returns), "episode_lengths": list(self.episode_lengths)}

    def load_state_dict(self, state: dict, order: np.ndarray | None = None) -> None:
        """Restore a ledger; ``order`` lays its rows out as the episode store laid out its own (``restore_order``)."""
        saved = np.asarray(state["reward"])
        if order is None:
            order = np.arange(len(saved))
        self.reward[:len(order)] = saved[order]
        self.size = state["size"]
        self.episode_returns = list(state["episode_returns"])
        self.episode_lengths = list(state["episode_lengths"])
        self.drop_partial_episodes()
