"""Adam for small networks updated thousands of times: torch's fused Adam kernel, called directly.

``torch.optim.Adam(fused=True)`` runs one kernel per step, but its Python bookkeeping around that
kernel (grouping tensors by device and dtype, profiler scopes, state lookups) costs ~190 µs per call
on a CPU, against ~25 µs for the kernel on a 256-wide critic's few tensors. SAC calls it three
times per update (experiments/profile_sac_update.py). This class keeps the same update and the
same state (``exp_avg``, ``exp_avg_sq``, a float32 ``step`` per parameter) and calls the kernel
once per step; tests/test_sac_update.py checks it against torch.optim.Adam step for step.
"""

from __future__ import annotations

from typing import Iterable

import torch


class Adam:
    """Adam (Kingma & Ba 2015) with constant learning rate, no weight decay and no AMSGrad."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (the next backward writes fresh ones instead of adding)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step on every parameter that has a gradient."""
        have = [i for i, p in enumerate(self.params) if p.grad is not None]
        if len(have) < len(self.params):  # e.g. a parameter outside this step's graph
            pick = lambda xs: [xs[i] for i in have]  # noqa: E731
            params, exp_avg, exp_avg_sq, steps = (pick(x) for x in (self.params, self.exp_avg, self.exp_avg_sq,
                                                                     self.steps))
        else:
            params, exp_avg, exp_avg_sq, steps = self.params, self.exp_avg, self.exp_avg_sq, self.steps
        if not params:
            return
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, [p.grad for p in params], exp_avg, exp_avg_sq, [], steps, lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False)

    def state_dict(self) -> dict:
        """Moments and step counts, for snapshots."""
        return {"exp_avg": [t.clone() for t in self.exp_avg], "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
                "step": [t.clone() for t in self.steps], "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved (moments copied in place onto this optimiser's device)."""
        with torch.no_grad():
            for dst, key in ((self.exp_avg, "exp_avg"), (self.exp_avg_sq, "exp_avg_sq"), (self.steps, "step")):
                if len(state[key]) != len(dst):
                    raise ValueError(f"optimizer state has {len(state[key])} {key} tensors, this model needs {len(dst)}")
                for d, s in zip(dst, state[key]):
                    d.copy_(s)


def make_adam(params: Iterable[torch.Tensor], lr: float, device: torch.device) -> Adam | torch.optim.Adam:
    """This module's Adam where torch has the fused kernel for ``device``, torch.optim.Adam elsewhere."""
    if hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda"):
        return Adam(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)
