"""The learned reward: an ensemble of MLPs on (obs, action), trained on preference labels.

All members are one ``EnsembleMLP`` (weights ``[E, in, out]``), so a forward pass over the whole
ensemble is one batched matmul per layer. Each per-step reward is squashed into [-1, 1] by tanh,
as in PEBBLE (``output: linear`` leaves it unbounded, ``softplus`` unbounded and non-negative); the
agent's reward is the ensemble mean.
Training follows PEBBLE: every round runs up to ``epochs`` passes over all labels collected so
far, each member on its own shuffle of them, and stops early once the mean training accuracy
exceeds ``stop_accuracy``. The model is never re-initialised between rounds.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pbrl.agents.nets import EnsembleMLP
from pbrl.agents.optim import make_adam
from pbrl.reward.labels import LabelSet
from pbrl.reward.losses import preference_loss
from pbrl.reward.rime import label_losses


@dataclass
class RewardModelConfig:
    """Reward-model settings; every field is documented in conf/config.yaml (``reward_model``)."""

    ensemble_size: int = 3
    hidden_dim: int = 256
    depth: int = 3
    lr: float = 3e-4
    batch_size: int = 128
    epochs: int = 50
    stop_accuracy: float = 0.97
    relabel_batch: int = 1024
    output: str = "tanh"
    scale: float = 1.0
    robust: str = "none"  # none | rime (pbrl/reward/rime.py)
    rime: dict | None = None  # RimeConfig's fields, overriding its defaults
    crop: str = "none"  # none | qpa (pbrl/reward/crop.py)
    crop_settings: dict | None = None  # Crop's fields, overriding its defaults
    semi: bool = False  # SURF's pseudo-labels on unlabelled pairs (pbrl/reward/surf.py)
    surf: dict | None = None  # SurfConfig's fields, overriding its defaults


CPU_ROWS_PER_PASS = 1024
# each member's per-step output -> its reward:
# - tanh (PEBBLE): in [-1, 1];
# - linear: unbounded, for tasks whose true reward keeps growing with skill (a tanh can saturate there;
#   experiments/probe_reward_saturation.py);
# - softplus: unbounded above and never negative. Preferences between segments of equal length cannot tell
#   a reward from the same reward plus a constant, so a learned reward can sit near or below 0 per step; on a
#   task that ends episodes when the agent falls (Walker2d, Hopper) falling then costs the agent nothing, or
#   pays it. A non-negative reward keeps staying alive at least as good as ending the episode.
SQUASH = {"tanh": torch.tanh, "linear": lambda x: x, "softplus": F.softplus}


class RewardModel:
    """Ensemble reward model: ``reward`` for the agent, ``fit`` on a LabelSet, scores for query selection."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: RewardModelConfig, device: torch.device | str = "cpu",
                 precision: str = "fp32"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.precision = precision
        self.net = EnsembleMLP(cfg.ensemble_size, obs_dim + action_dim, cfg.hidden_dim, cfg.depth, 1,
                               activation=nn.LeakyReLU).to(self.device)
        self.opt = make_adam(self.net.parameters(), cfg.lr, self.device)
        self.updates = 0  # gradient steps taken, over all rounds
        self.squash = SQUASH[cfg.output]

    def _autocast(self, enabled: bool = True):
        if not (enabled and self.precision == "bf16"):
            return contextlib.nullcontext()  # entering a disabled autocast still costs ~40 µs
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def member_rewards(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Per-step reward of every member: ``[..., obs_dim]`` -> ``[E, ...]``, squashed by ``cfg.output``."""
        x = torch.cat([obs, action], dim=-1).reshape(-1, obs.shape[-1] + action.shape[-1])
        # bf16 pays off on batches; one row (the reward of each new env step) runs faster in fp32
        with self._autocast(enabled=x.shape[0] >= 256):
            out = self.net(x)  # [E, N, 1]
        return self.squash(out.float().squeeze(-1)).reshape(self.cfg.ensemble_size, *obs.shape[:-1])

    @torch.inference_mode()
    def reward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The agent's reward: ``scale`` × the ensemble mean, ``[...]`` for obs ``[..., obs_dim]`` (no gradient)."""
        mean = self.member_rewards(obs.to(self.device), action.to(self.device)).mean(0)
        return mean if self.cfg.scale == 1.0 else mean * self.cfg.scale

    def segment_scores(self, obs: torch.Tensor, action: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """Summed predicted reward of segments: ``[N, K, T, ·]`` -> ``[E, N, K]``.

        With ``per_member=True`` the inputs are ``[E, N, K, T, ·]`` (each member its own batch).
        """
        return self._scores(torch.cat([obs, action], dim=-1), per_member)

    def _step_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's per-step rewards of its own segments: ``[E, N, K, T, obs + action]`` -> ``[E, N, K, T]``."""
        e, n, k, t, d = x.shape
        with self._autocast():
            out = self.net(x.reshape(e, n * k * t, d))  # [E, NKT, 1]
        return self.squash(out.float()).reshape(e, n, k, t)

    def _scores(self, x: torch.Tensor, per_member: bool) -> torch.Tensor:
        """segment_scores on observations and actions already joined: ``[(E,) N, K, T, obs_dim + action_dim]``."""
        if per_member:
            e, n, k, t, d = x.shape
            with self._autocast():
                out = self.net(x.reshape(e, n * k * t, d))  # [E, NKT, 1]
            return self.squash(out.float()).reshape(e, n, k, t).sum(-1)
        n, k, t, d = x.shape
        with self._autocast():
            out = self.net(x.reshape(n * k * t, d))
        return self.squash(out.float()).reshape(-1, n, k, t).sum(-1)

    @torch.no_grad()
    def choice_probs(self, obs: torch.Tensor, action: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """Every member's probability that each segment of a query is the best: ``[E, N, K]``.

        For K = 2 the first column is the Bradley-Terry P(σ0 ≻ σ1).
        """
        parts = [torch.softmax(self.segment_scores(obs[i:i + chunk].to(self.device),
                                                   action[i:i + chunk].to(self.device)), dim=-1)
                 for i in range(0, obs.shape[0], chunk)]
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def accuracy(self, labels: LabelSet, index: np.ndarray | None = None) -> float:
        """Fraction of the ranked (not "equal") labels whose best segment the ensemble mean picks; NaN if none."""
        index = np.arange(len(labels)) if index is None else np.asarray(index)
        index = index[~labels.equal[index]]
        if len(index) == 0:
            return math.nan
        obs, action, ranking, _ = labels.tensors(index, self.device)
        scores = self.segment_scores(obs, action).mean(0)  # [N, K]
        return float((scores.argmax(-1) == ranking[:, 0]).float().mean())

    def fit(self, labels: LabelSet, generator: torch.Generator, selector=None, crop=None, pool=None) -> dict:
        """One PEBBLE reward-learning round over all labels; returns loss, accuracy and epochs run.

        With a ``selector`` (RIME's, pbrl/reward/rime.py) each epoch trains on the labels it trusts and,
        with the label reversed for that epoch, on those it flips; a round then runs at least its
        ``min_epochs`` before accuracy may stop it. With a ``crop`` (QPA's, pbrl/reward/crop.py) every query is
        trained on random temporal crops of its segments, each crop with the query's label. With a ``pool``
        (SURF's unlabelled pairs, pbrl/reward/surf.py) every minibatch adds the pseudo-labelled loss of
        ``mu`` pooled pairs per labelled query, each member on its own pairs."""
        cfg = self.cfg
        n, e = len(labels), cfg.ensemble_size
        if n == 0:
            return {"reward_epochs": 0}
        started = time.perf_counter()
        obs_all, action_all, ranking_all, equal_all = labels.tensors(None, self.device)
        inputs_all = torch.cat([obs_all, action_all], dim=-1)  # joined once, not per minibatch
        ranked = ~equal_all
        rows = 0  # segment steps through the network, over all members
        per_pass = self.queries_per_pass(labels.k * labels.length)
        loss_sum, acc = math.nan, math.nan
        epoch = 0
        ranking_epoch, chosen = ranking_all, None
        kept_sum, kept_count = torch.zeros((), device=self.device), 0  # SURF: pseudo-labelled pairs kept
        for epoch in range(1, cfg.epochs + 1):
            if selector is not None:  # this epoch's labels: RIME's trusted ones, and the flipped ones reversed
                losses = label_losses(self.choice_probs(obs_all, action_all), ranking_all, equal_all)
                trusted, flipped = selector.select(losses.cpu().numpy(), equal_all.cpu().numpy())
                chosen = torch.as_tensor(np.concatenate([np.flatnonzero(trusted), np.flatnonzero(flipped)]),
                                         device=self.device)
                flip = torch.as_tensor(flipped, device=self.device)
                ranking_epoch = torch.where(flip[:, None], ranking_all.flip(-1), ranking_all)
            if chosen is None:  # each member its own permutation of all labels: [E, N]
                order = torch.argsort(torch.rand(e, n, generator=generator), dim=1).to(self.device)
            else:  # ... of the epoch's chosen labels (a trusted one that is also flipped comes twice, as in RIME)
                order = chosen[torch.argsort(torch.rand(e, len(chosen), generator=generator), dim=1).to(self.device)]
            # running sums stay on the device: one host sync per epoch, not per minibatch
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device)
            for start in range(0, order.shape[1], cfg.batch_size):
                idx = order[:, start:start + cfg.batch_size]  # [E, b]
                self.opt.zero_grad()
                for part in idx.split(per_pass, dim=1):  # the minibatch's gradient, summed over passes
                    ranking, equal = ranking_epoch[part], equal_all[part]
                    if crop is None:
                        scores = self._scores(inputs_all[part], per_member=True)  # [E, p, K]
                    else:  # [E, C*p, K]: each member its own crops; every crop carries its query's label
                        masks = crop.masks(e * part.shape[1], labels.k, labels.length, generator).to(self.device)
                        masks = masks.reshape(crop.crops, e, *part.shape[1:], labels.k, labels.length).transpose(0, 1)
                        scores = crop.scores(self._step_rewards(inputs_all[part]), masks)
                        ranking = ranking.unsqueeze(1).expand(e, crop.crops, *ranking.shape[1:]).reshape(
                            e, -1, labels.k)
                        equal = equal.unsqueeze(1).expand(e, crop.crops, part.shape[1]).reshape(e, -1)
                    loss = preference_loss(scores, ranking, equal) * (part.shape[1] / idx.shape[1])
                    loss.backward()
                    with torch.no_grad():
                        hit = (scores.argmax(-1) == ranking[..., 0]).reshape(e, -1, part.shape[1]).float().mean(1)
                        correct += (hit * ranked[part]).sum()  # a cropped query counts its crops' mean
                        loss_sum += loss.detach() * idx.shape[1]
                if pool is not None and len(pool):  # SURF: each member its own mu x b unlabelled pairs
                    m = idx.shape[1] * pool.cfg.mu
                    unlabelled = pool.inputs(e * m, generator).to(self.device).reshape(e, m, *inputs_all.shape[1:])
                    for part in unlabelled.split(per_pass, dim=1):
                        if crop is not None and crop.window:  # SURF: labels from the centre, loss on a crop
                            steps, w = self._step_rewards(part), crop.window
                            masks = crop.masks(e * part.shape[1], labels.k, labels.length, generator).to(self.device)
                            masks = masks.reshape(1, e, part.shape[1], labels.k, labels.length).transpose(0, 1)
                            loss_u, kept = pool.loss(crop.scores(steps, masks),
                                                     steps[..., w:labels.length - w].sum(-1).detach())
                        else:
                            loss_u, kept = pool.loss(self._scores(part, per_member=True))
                        (loss_u * (part.shape[1] / m)).backward()
                        kept_sum += kept.detach() * part.shape[1]
                        kept_count += part.shape[1]
                        rows += part.shape[0] * part.shape[1] * labels.k * labels.length
                self.opt.step()
                self.updates += 1
                rows += idx.numel() * labels.k * labels.length
            # every member sees every (chosen) label once per epoch
            counted = e * int(ranked.sum() if chosen is None else ranked[chosen].sum())
            loss_sum = float(loss_sum)
            acc = float(correct) / counted if counted else math.nan
            if counted and acc > cfg.stop_accuracy and (selector is None or epoch > selector.cfg.min_epochs):
                break
        return {"reward_loss": loss_sum / max(1, order.shape[1]), "reward_train_acc": acc, "reward_epochs": epoch,
                "reward_fit_s": time.perf_counter() - started,
                "reward_fit_gflop": rows * self.train_flop_per_row() / 1e9,
                **(selector.last if selector is not None else {}),
                **({"surf_kept": float(kept_sum) / kept_count} if kept_count else {})}

    def queries_per_pass(self, rows_per_query: int) -> int:
        """Queries per forward/backward pass of a minibatch (its gradient is the sum over passes).

        On a CPU, passes of ~``CPU_ROWS_PER_PASS`` rows per member keep each layer's activations in
        cache: 60.6 GFLOP/s against 51.0 for one 12800-row pass (128 queries of 2 x 50 steps) on an
        AMD EPYC at 1 thread (experiments/bench_pebble.py --part fit). A GPU takes the minibatch whole.
        """
        if self.device.type != "cpu":
            return self.cfg.batch_size
        return max(1, CPU_ROWS_PER_PASS // rows_per_query)

    def train_flop_per_row(self) -> float:
        """Matmul FLOPs of one segment step through one member, forward and backward: 6 per multiply-add."""
        return 6.0 * sum(w[0].numel() for w in self.net.weights)

    def state_dict(self) -> dict:
        """Network, optimiser and counter, for snapshots."""
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved."""
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.updates = state["updates"]
