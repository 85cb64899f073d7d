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


# batches from this many rows up run one matmul per member on a CPU (see EnsembleMLP.forward)
MEMBER_ROWS = 512

# activations whose in-place form autograd supports on a matmul's output (their backward reads the output)
_INPLACE = {nn.ReLU: torch.relu_, nn.LeakyReLU: nn.functional.leaky_relu_}


def mlp(in_dim: int, hidden_dim: int, depth: int, out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden_dim`` units, then a linear output layer."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        # in place on the layer's fresh output where autograd allows (see _INPLACE): one buffer fewer per layer
        layers += [nn.Linear(d, hidden_dim), activation(inplace=True) if activation in _INPLACE else activation()]
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


INITS = ("default", "orthogonal")


@torch.no_grad()
def init_weights_(module: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise ``module``'s layers: ``default`` keeps torch's nn.Linear init; ``orthogonal`` gives
    orthogonal weights (gain 1) and zero biases, as B-Pref's and DrQ's ``utils.weight_init`` do."""
    if scheme == "default":
        return module
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, EnsembleMLP):
            for w, b in zip(layer.weights, layer.biases):
                for member in w:  # [in, out]: orthogonal like nn.Linear's [out, in] weight, transposed
                    nn.init.orthogonal_(member.T)
                b.zero_()
    return module


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
        self.inplace_activation = _INPLACE.get(activation)

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Evaluate all members; ``params`` (weights then biases, e.g. detached) replaces the module's own.

        On a CPU, batches of ``MEMBER_ROWS`` rows or more (the reward model's training passes and
        relabelling) run the members as E plain matmuls, ~9 % faster there than one ``bmm`` per layer
        (experiments/bench_pebble.py --part fit); SAC's 256-row batches, a GPU and bf16 autocast take
        one ``bmm`` per layer (experiments/profile_sac_update.py measured both). A single output unit
        is a multiply-and-sum (``mv`` per member): a ``bmm`` with one column ran ~4x slower.
        Activations run in place on fresh matmul results.
        """
        n = len(self.weights)
        ws, bs = (params[:n], params[n:]) if params is not None else (self.weights, self.biases)
        if x.device.type == "cpu" and x.shape[-2] >= MEMBER_ROWS and not torch.is_autocast_enabled("cpu"):
            return self._forward_members(x, ws, bs)
        return self._forward_batched(x, ws, bs)

    def _forward_batched(self, x, ws, bs) -> torch.Tensor:
        if x.dim() == 2:  # shared input: a stride-0 view, no copy
            x = x.expand(len(ws[0]), *x.shape)
        x = torch.baddbmm(bs[0], x, ws[0])
        for w, b in zip(ws[1:-1], bs[1:-1]):
            x = torch.bmm(self._activate(x), w).add_(b)
        return fp32_output(lambda h: self._output(h, ws[-1], bs[-1]), self._activate(x))

    def _forward_members(self, x, ws, bs) -> torch.Tensor:
        # unbind's backward stacks the members' weight gradients into one [E, in, out] tensor
        ws = [w.unbind(0) for w in ws]
        bs = [b.squeeze(1).unbind(0) for b in bs]
        shared = x.dim() == 2
        out = []
        for i in range(len(ws[0])):
            h = torch.addmm(bs[0][i], x if shared else x[i], ws[0][i])
            for layer in range(1, len(ws) - 1):
                h = torch.addmm(bs[layer][i], self._activate(h), ws[layer][i])
            h = self._activate(h)
            if ws[-1][i].shape[-1] == 1:
                out.append(torch.mv(h, ws[-1][i].squeeze(-1)).add_(bs[-1][i]).unsqueeze(-1))
            else:
                out.append(torch.addmm(bs[-1][i], h, ws[-1][i]))
        return torch.stack(out)

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        # in place on a fresh matmul result; autograd keeps what the activation's backward needs
        return self.activation(x) if self.inplace_activation is None else self.inplace_activation(x)

    @staticmethod
    def _output(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if w.shape[-1] == 1:
            return (h * w.transpose(1, 2)).sum(-1, keepdim=True) + b
        return torch.baddbmm(b, h, w)

    def detached_params(self) -> list[torch.Tensor]:
        """Weights and biases cut from autograd: gradients then flow to the input only."""
        return [p.detach() for p in self.weights] + [p.detach() for p in self.biases]
