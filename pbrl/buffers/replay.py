"""Replay buffer: preallocated transition arrays plus the simulator state of every stored step.

Storage is NumPy (cheap per-step writes, easy snapshots); sampling returns torch tensors on the
agent's device. On the CPU the tensors are zero-copy views of the arrays.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pbrl.agents.sac import Batch

RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (obs [N, o], action [N, a]) -> reward [N]


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


class ReplayBuffer:
    """A ring buffer of ``capacity`` transitions.

    Columns: ``obs``, ``action``, ``reward`` (whatever the agent learns from: the env reward, or a
    learned reward after ``relabel``), ``terminated``, ``truncated``, ``next_obs``, ``episode`` (a
    running episode id), ``step`` (index of the step within its episode) and ``sim_state`` (the
    simulator state at ``obs``, so that any stored step can be re-rendered later).
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, sim_state_dim: int = 0,
                 device: torch.device | str = "cpu"):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.truncated = np.zeros(capacity, np.bool_)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.episode = np.zeros(capacity, np.int64)
        self.step = np.zeros(capacity, np.int64)
        self.sim_state = np.zeros((capacity, sim_state_dim), np.float64)
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid slots
        self._torch = {k: torch.from_numpy(getattr(self, k)) for k in ("obs", "action", "reward", "next_obs",
                                                                       "terminated")}

    _COLUMNS = ("obs", "action", "reward", "terminated", "truncated", "next_obs", "episode", "step", "sim_state")

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, terminated: bool, truncated: bool,
            next_obs: np.ndarray, episode: int, step: int, sim_state: np.ndarray | None = None) -> None:
        """Store one transition, overwriting the oldest once full."""
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.terminated[i] = terminated
        self.truncated[i] = truncated
        self.next_obs[i] = next_obs
        self.episode[i] = episode
        self.step[i] = step
        if sim_state is not None and self.sim_state.shape[1]:
            self.sim_state[i] = sim_state
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

    def observations(self) -> torch.Tensor:
        """Every stored observation ``[size, obs_dim]`` on the buffer's device (the k-NN bonus's pool)."""
        obs = self._torch["obs"][:self.size]
        return obs if self.device.type == "cpu" else obs.to(self.device, non_blocking=True)

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
        for k in self._COLUMNS:
            getattr(self, k)[:n] = state[k].numpy()[order]
        self.size, self.pos = n, pos
