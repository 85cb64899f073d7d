"""The labelled queries a reward model trains on: K segments each, with a ranking or "equal".

Segments are stored as copies of their observations and actions (not buffer indices), so a label
stays valid after the replay buffer has overwritten the steps it was made from.
"""

from __future__ import annotations

import numpy as np
import torch


class LabelSet:
    """A growing set of labelled queries.

    ``obs``: ``[N, K, T, obs_dim]``, ``action``: ``[N, K, T, action_dim]``, ``ranking``: ``[N, K]``
    segment positions from best to worst, ``equal``: ``[N]`` (the teacher judged all K equally
    good; the ranking is then ignored).
    """

    def __init__(self, k: int, length: int, obs_dim: int, action_dim: int):
        self.k, self.length = k, length
        self.obs = np.zeros((0, k, length, obs_dim), np.float32)
        self.action = np.zeros((0, k, length, action_dim), np.float32)
        self.ranking = np.zeros((0, k), np.int64)
        self.equal = np.zeros(0, np.bool_)

    def __len__(self) -> int:
        return len(self.ranking)

    def add(self, obs: np.ndarray, action: np.ndarray, ranking: np.ndarray, equal: np.ndarray) -> None:
        """Append labelled queries (shapes as the class attributes, with N new rows)."""
        ranking = np.asarray(ranking, np.int64).reshape(-1, self.k)
        if not (np.sort(ranking, axis=1) == np.arange(self.k)).all():
            raise ValueError(f"each ranking must be a permutation of 0..{self.k - 1}, got {ranking.tolist()}")
        self.obs = np.concatenate([self.obs, np.asarray(obs, np.float32)])
        self.action = np.concatenate([self.action, np.asarray(action, np.float32)])
        self.ranking = np.concatenate([self.ranking, ranking])
        self.equal = np.concatenate([self.equal, np.asarray(equal, np.bool_).reshape(-1)])

    def tensors(self, index: np.ndarray | None, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(obs, action, ranking, equal)`` of the rows in ``index`` (all rows if None) on ``device``."""
        sel = slice(None) if index is None else np.asarray(index)
        return tuple(torch.as_tensor(a[sel], device=device) for a in (self.obs, self.action, self.ranking, self.equal))

    def features(self) -> np.ndarray:
        """Flattened observations of every labelled query, ``[N, K*T*obs_dim]`` (k-center's space)."""
        return self.obs.reshape(len(self), self.obs[0].size if len(self) else int(np.prod(self.obs.shape[1:])))

    def state_dict(self) -> dict:
        """All rows, for snapshots."""
        return {"obs": self.obs, "action": self.action, "ranking": self.ranking, "equal": self.equal}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved."""
        self.obs, self.action = np.asarray(state["obs"]), np.asarray(state["action"])
        self.ranking, self.equal = np.asarray(state["ranking"]), np.asarray(state["equal"])
