"""RIME (Cheng et al., ICML 2024): reward learning that survives a noisy teacher.

Before every epoch of reward training each labelled pair's loss is computed under the ensemble's
mean preference probability (the cross-entropy of the label, what RIME's code calls ``KL_div``). A
pair is *trusted* when its loss is below an adaptive threshold

    -ln(x) + alpha · x + min(beta_t · var, 3)

with ``x`` and ``var`` the running maximum and variance of the trusted losses so far, and its label is
*flipped* for that epoch when its loss exceeds ``-ln(flip_tau)``; the epoch trains on the trusted
pairs and the flipped ones. ``beta_t`` decays linearly from ``beta_init`` to ``beta_min`` over
``beta_decay_epochs`` epochs. Defaults from the official code (github.com/CJReinforce/RIME_ICML2024):
``reward_model_RIME.py`` (``train_RIME``'s selection, ``get_threshold_beta``), ``utils.py``
(``RunningMeanStd(mode='fixed', lr=0.1)``: exponential moving max and mean, pooled variance, max
starting at 0 so that the first epoch trusts every pair), and ``run_parallel.sh`` (alpha 0.5,
beta 3.0 -> 1.0 over k = 60 epochs for DMC tasks (600 for Meta-World), flip_tau 0.001, at least 15
epochs per round for DMC (5 for Meta-World) before accuracy may stop a round).

RIME also warm-starts the reward model during state-entropy pretraining (``RimeWarmStart``): after
every pretraining step, ``warm_start_updates`` (5) gradient steps of every member's mean squared error
to the k-NN state-entropy bonus of a batch of stored steps, normalised to about [-1, 1] (standardised,
then divided by the largest standardised value seen: ``train_RIME.py``, the unsupervised branch).

Labels are never changed in the label set: a flip lasts one epoch, as in RIME. Pairs only (K = 2);
an "equal" label is never flipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from pbrl.errors import ConfigError

ROBUST = ("none", "rime")


@dataclass
class RimeConfig:
    alpha: float = 0.5
    beta_init: float = 3.0
    beta_min: float = 1.0
    beta_decay_epochs: int = 60
    flip_tau: float = 1e-3
    min_epochs: int = 15
    warm_start_updates: int = 5  # reward-model steps per pretraining step (0: no warm start)
    warm_start_batch: int = 256  # stored steps per warm-start step (RIME: the agent's batch size)


class RimeSelector:
    """Which labelled pairs an epoch trains on, and which of them with the label flipped; see the module docstring."""

    def __init__(self, cfg: RimeConfig):
        self.cfg = cfg
        self.max, self.mean, self.var, self.count = 0.0, 0.0, 1.0, 0  # RIME's RunningMeanStd(mean=0, std=1.0)
        self.epochs = 0  # selections made so far (RIME's update_step)
        self.last = {"rime_trusted": 0, "rime_flipped": 0}

    def beta(self) -> float:
        c = self.cfg
        return max(c.beta_min, c.beta_init - (c.beta_init - c.beta_min) / c.beta_decay_epochs * self.epochs)

    def threshold(self) -> float:
        """The current trust threshold on a pair's loss."""
        x = self.max
        return -math.log(x + 1e-8) + self.cfg.alpha * x + min(self.beta() * self.var, 3.0)

    def select(self, losses: np.ndarray, equal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(trusted, flipped)`` boolean masks over the labels, from each label's loss; updates the statistics."""
        losses = np.asarray(losses, np.float64)
        trusted = losses < self.threshold()
        flipped = (losses > -math.log(self.cfg.flip_tau)) & ~np.asarray(equal, bool)
        if trusted.any():
            self._update(losses[trusted])
        self.epochs += 1
        self.last = {"rime_trusted": int(trusted.sum()), "rime_flipped": int(flipped.sum())}
        return trusted, flipped

    def _update(self, x: np.ndarray) -> None:
        """RIME's RunningMeanStd(mode='fixed', lr=0.1): moving max and mean, pooled variance."""
        lr = 0.1
        batch_mean, batch_var, n = float(x.mean()), float(x.var()), len(x)
        delta, total = batch_mean - self.mean, self.count + n
        self.var = (self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total) / total
        self.mean += delta * lr
        self.max += (float(x.max()) - self.max) * lr
        self.count = total

    def state_dict(self) -> dict:
        return {"max": self.max, "mean": self.mean, "var": self.var, "count": self.count, "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.max, self.mean, self.var = state["max"], state["mean"], state["var"]
        self.count, self.epochs = state["count"], state["epochs"]


class RimeWarmStart:
    """Regress the reward model on the normalised state-entropy bonus during pretraining; see the module docstring."""

    def __init__(self, cfg: RimeConfig, k: int, device: torch.device):
        from pbrl.intrinsic.state_entropy import RunningMeanStd

        self.cfg, self.k = cfg, k
        self.stats = RunningMeanStd(device=device)
        self.low, self.high = math.inf, -math.inf  # the smallest and largest bonus seen (RIME's s_ent_stats)
        self.steps = 0

    def target(self, distance: torch.Tensor) -> torch.Tensor:
        """The bonus standardised by its running statistics, over the largest standardised value seen."""
        self.stats.update(distance)
        self.low, self.high = min(self.low, float(distance.min())), max(self.high, float(distance.max()))
        mean, std = self.stats.mean, self.stats.std.clamp_min(1e-8)
        scale = max(abs(self.low - float(mean)), abs(self.high - float(mean))) / float(std)
        return (distance - mean) / std / max(scale, 1e-8)

    def step(self, model, obs: torch.Tensor, action: torch.Tensor, generator: torch.Generator) -> float | None:
        """``warm_start_updates`` steps on random stored rows of ``obs``/``action`` ``[N, ·]``; the last loss."""
        from pbrl.intrinsic.state_entropy import knn_distance

        n = obs.shape[0]
        if n <= self.k or not self.cfg.warm_start_updates:
            return None
        loss = None
        for _ in range(self.cfg.warm_start_updates):
            rows = torch.randint(0, n, (self.cfg.warm_start_batch,), generator=generator)
            target = self.target(knn_distance(obs[rows], obs, self.k)).to(model.device)
            predicted = model.member_rewards(obs[rows].to(model.device), action[rows].to(model.device))  # [E, B]
            loss = (predicted - target).pow(2).mean(1).sum()  # each member's MSE, summed as RIME does
            model.opt.zero_grad()
            loss.backward()
            model.opt.step()
            self.steps += 1
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"stats": self.stats.state_dict(), "low": self.low, "high": self.high, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.stats.load_state_dict(state["stats"])
        self.low, self.high, self.steps = state["low"], state["high"], state["steps"]


@torch.no_grad()
def label_losses(probs: torch.Tensor, ranking: torch.Tensor, equal: torch.Tensor) -> torch.Tensor:
    """Each pair's cross-entropy under the ensemble-mean probability: ``probs [E, N, 2]`` -> ``[N]``.

    A ranked pair's target is its preferred segment; an "equal" pair's is (0.5, 0.5)."""
    p = probs.mean(0).clamp_min(1e-12)  # [N, 2]
    ranked = -torch.log(p.gather(1, ranking[:, :1])).squeeze(1)
    return torch.where(equal, -0.5 * torch.log(p).sum(1), ranked)


def make_selector(rm: Mapping[str, Any], k: int) -> RimeSelector | None:
    """A RimeSelector for ``reward_model.robust=rime`` (pairs only), else None."""
    robust = rm.get("robust", "none")
    if robust not in ROBUST:
        raise ConfigError("reward_model.robust", f"got {robust!r}; allowed: {', '.join(ROBUST)}")
    if robust == "none":
        return None
    if k != 2:
        raise ConfigError("reward_model.robust", f"rime filters pairwise labels; query.k is {k}: use query.k=2")
    given = dict(rm.get("rime") or {})
    fields = {f for f in RimeConfig.__dataclass_fields__}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ConfigError(f"reward_model.rime.{unknown[0]}",
                          f"not a RIME setting; allowed: {', '.join(sorted(fields))}")
    cfg = RimeConfig(**given)
    for name, low in (("beta_decay_epochs", 1), ("min_epochs", 0), ("warm_start_updates", 0), ("warm_start_batch", 1)):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"reward_model.rime.{name}", f"got {value!r}; must be an integer >= {low}")
    if not 0 < cfg.flip_tau < 1:
        raise ConfigError("reward_model.rime.flip_tau", f"got {cfg.flip_tau!r}; must be in (0, 1)")
    return RimeSelector(cfg)
