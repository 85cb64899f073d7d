"""Particle-based state-entropy bonus (PEBBLE's unsupervised pretraining reward).

Each state's bonus is the L2 distance to its k-th nearest neighbour among the states in the
replay buffer, divided by a running standard deviation of those distances (no mean subtraction).
Distances are computed in chunks of the buffer, so memory stays at ``[B, chunk]``.
"""

from __future__ import annotations

import torch


class RunningMeanStd:
    """Running mean and variance by the exact parallel (Chan et al.) update.

    The original PEBBLE code's update drops history from the mean; merging the batch moments with
    the running ones as below gives the same result as the statistics of all data seen so far.
    """

    def __init__(self, epsilon: float = 1e-4, device: torch.device | str = "cpu"):
        self.mean = torch.zeros((), device=device)
        self.var = torch.ones((), device=device)
        self.count = torch.tensor(epsilon, device=device)

    def update(self, x: torch.Tensor) -> None:
        """Merge the moments of the values in ``x`` (any shape)."""
        x = x.detach().float().reshape(-1)
        n = x.numel()
        batch_mean, batch_var = x.mean(), x.var(unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = (state[k].to(self.mean.device) for k in ("mean", "var", "count"))


@torch.no_grad()
def knn_distance(states: torch.Tensor, pool: torch.Tensor, k: int = 5, chunk: int = 16384) -> torch.Tensor:
    """Distance from each of ``states`` ``[B, d]`` to its k-th nearest neighbour in ``pool`` ``[N, d]``.

    The states are assumed to be in the pool (they are sampled from the buffer), so the nearest
    "neighbour" at distance 0 is the state itself: the k-th neighbour is the (k+1)-th smallest
    distance. Returns ``[B]``.
    """
    if pool.shape[0] <= k:
        raise ValueError(f"the pool holds {pool.shape[0]} states; the k-NN bonus needs more than k={k}")
    # squared distances as |s|^2 + |p|^2 - 2 s.p, one matmul per chunk (what cdist does for batches
    # this size), ranked without cdist's square root of every entry: only the k-th is rooted
    sq_states = states.pow(2).sum(1, keepdim=True)
    best = None  # [B, k+1] smallest squared distances so far
    for start in range(0, pool.shape[0], chunk):
        part = pool[start:start + chunk]
        dist = torch.addmm(part.pow(2).sum(1), states, part.t(), alpha=-2.0).add_(sq_states)
        if best is not None:
            dist = torch.cat([best, dist], dim=1)
        best = dist.topk(min(k + 1, dist.shape[1]), dim=1, largest=False).values
    return best[:, k].clamp_min(0.0).sqrt()


class StateEntropy:
    """The normalised k-NN state-entropy reward; call it on a batch of states."""

    def __init__(self, k: int = 5, chunk: int = 16384, device: torch.device | str = "cpu"):
        self.k, self.chunk = k, chunk
        self.stats = RunningMeanStd(device=device)

    def __call__(self, states: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """Bonus ``[B]`` for ``states`` ``[B, d]`` against the buffer's states ``pool`` ``[N, d]``."""
        dist = knn_distance(states, pool, self.k, self.chunk)
        self.stats.update(dist)
        return dist / self.stats.std.clamp_min(1e-8)
