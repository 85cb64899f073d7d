"""Networks: a plain MLP and a batched ensemble MLP (one module, leading ensemble dimension).

The ensemble MLP serves the twin critics and, later, the reward model: E members run as one
batched matmul per layer instead of a Python loop over E modules.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def fp32_output(layer, x: torch.Tensor) -> torch.Tensor:
    """Apply the output ``layer`` in fp32 even under bf16 autocast.

    bf16 keeps 8 significant bits: a Q-value near 300 would be rounded to a multiple of 2, as
    large as a step's reward. Hidden layers tolerate that relative error; outputs that enter a TD
    target, a log-probability or a preference logit do not, and the output layer is cheap.
    """
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return layer(x.float())
    return layer(x)


def mlp(in_dim: int, hidden_dim: int, depth: int, out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden_dim`` units, then a linear output layer."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden_dim), activation()]
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class EnsembleMLP(nn.Module):
    """E independent MLPs evaluated together.

    Weights are ``[E, in, out]`` tensors; every member is initialised like ``nn.Linear``.
    ``forward(x)`` takes ``x: [B, in]`` (the same input for every member) or ``[E, B, in]``
    (one input per member) and returns ``[E, B, out]``.
    """

    def __init__(self, ensemble_size: int, in_dim: int, hidden_dim: int, depth: int, out_dim: int,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * depth + [out_dim]
        self.ensemble_size = ensemble_size
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default init
            self.weights.append(nn.Parameter(torch.empty(ensemble_size, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(ensemble_size, 1, d_out).uniform_(-bound, bound)))
        self.activation = activation()

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Evaluate all members; ``params`` (weights then biases, e.g. detached) replaces the module's own."""
        n = len(self.weights)
        ws, bs = (params[:n], params[n:]) if params is not None else (self.weights, self.biases)
        if x.dim() == 2:  # shared input: a stride-0 view, no copy; baddbmm fuses the bias add
            x = x.expand(len(ws[0]), *x.shape)
        x = torch.baddbmm(bs[0], x, ws[0])
        for w, b in zip(ws[1:-1], bs[1:-1]):
            x = torch.baddbmm(b, self.activation(x), w)
        return fp32_output(lambda h: torch.baddbmm(bs[-1], h, ws[-1]), self.activation(x))

    def detached_params(self) -> list[torch.Tensor]:
        """Weights and biases cut from autograd: gradients then flow to the input only."""
        return [p.detach() for p in self.weights] + [p.detach() for p in self.biases]
