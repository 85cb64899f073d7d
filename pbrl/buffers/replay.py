"""Replay buffer: preallocated transition arrays (SAC's; episodes and simulator states live in the episode store).

Storage is NumPy (cheap per-step writes, easy snapshots); sampling returns torch tensors on the
agent's device. On the CPU the tensors are zero-copy views of the arrays.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from pbrl.buffers.episodes import restore_order

RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (obs [N, o], action [N, a]) -> reward [N]


class Batch(NamedTuple):
    """A sampled minibatch of transitions, all on the agent's device."""

    obs: torch.Tensor  # [B, obs_dim]
    action: torch.Tensor  # [B, action_dim]
    reward: torch.Tensor  # [B]
    next_obs: torch.Tensor  # [B, obs_dim]
    terminated: torch.Tensor  # [B] float, 1 where the episode truly ended (no bootstrap)


class ReplayBuffer:
    """A ring buffer of ``capacity`` transitions.

    Columns: ``obs``, ``action``, ``reward`` (whatever the agent learns from: the env reward, or a
    learned reward after ``relabel``), ``terminated`` and ``next_obs`` (the true successor, also at
    a time-limit end, so that truncated episodes bootstrap from it).
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device: torch.device | str = "cpu"):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid slots
        self._torch = {k: torch.from_numpy(getattr(self, k)) for k in ("obs", "action", "reward", "next_obs",
                                                                       "terminated")}

    _COLUMNS = ("obs", "action", "reward", "terminated", "next_obs")

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, terminated: bool,
            next_obs: np.ndarray) -> None:
        """Store one transition, overwriting the oldest once full."""
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.terminated[i] = terminated
        self.next_obs[i] = next_obs
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """A uniform minibatch (with replacement) as torch tensors on the buffer's device."""
        idx = torch.randint(0, self.size, (batch_size,), generator=generator)
        t = self._torch
        batch = Batch(t["obs"][idx], t["action"][idx], t["reward"][idx], t["next_obs"][idx], t["terminated"][idx])
        if self.device.type != "cpu":
            batch = Batch(*(x.to(self.device, non_blocking=True) for x in batch))
        return batch

    def sample_recent(self, batch_size: int, window: int, generator: torch.Generator | None = None) -> Batch:
        """A uniform minibatch (with replacement) of the newest ``window`` transitions."""
        window = max(1, min(window, self.size))
        back = torch.randint(1, window + 1, (batch_size,), generator=generator)
        idx = (self.pos - back) % self.capacity
        t = self._torch
        batch = Batch(t["obs"][idx], t["action"][idx], t["reward"][idx], t["next_obs"][idx], t["terminated"][idx])
        if self.device.type != "cpu":
            batch = Batch(*(x.to(self.device, non_blocking=True) for x in batch))
        return batch

    @torch.no_grad()
    def relabel(self, reward_fn: RewardFn, batch_size: int = 65536, device: torch.device | str | None = None) -> None:
        """Rewrite the reward column of every stored transition with ``reward_fn(obs, action)``.

        Works through the buffer in chunks of ``batch_size`` so that a large model never holds the
        whole buffer's activations at once.
        """
        device = torch.device(device) if device is not None else self.device
        for start in range(0, self.size, batch_size):
            end = min(start + batch_size, self.size)
            obs = torch.from_numpy(self.obs[start:end]).to(device)
            action = torch.from_numpy(self.action[start:end]).to(device)
            reward = reward_fn(obs, action).reshape(-1)
            self.reward[start:end] = reward.float().cpu().numpy()

    def chronological(self) -> np.ndarray:
        """Indices of the stored transitions from oldest to newest."""
        if self.size < self.capacity:
            return np.arange(self.size)
        return (np.arange(self.capacity) + self.pos) % self.capacity

    def state_dict(self) -> dict:
        """Stored transitions (only the filled part) and the write position, for snapshots."""
        n = self.size
        state = {k: torch.from_numpy(getattr(self, k)[:n].copy()) for k in self._COLUMNS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a buffer saved by state_dict into this one (its capacity may be larger).

        Rows are laid out oldest first, so a run extended to more steps (a larger buffer) keeps
        writing after its newest transition.
        """
        n = state["size"]
        order, pos = restore_order(n, state["pos"], state["capacity"], self.capacity)
        for k in self._COLUMNS:  # older snapshots also hold episode columns, now in the episode store
            getattr(self, k)[:n] = state[k].numpy()[order]
        self.size, self.pos = n, pos
