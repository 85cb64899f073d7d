"""SURF's semi-supervised reward learning (Park et al., ICLR 2022): pseudo-labels on unlabelled pairs.

Every feedback round adds ``mb_size × inv_label_ratio`` random segment pairs from the episode store's
recent episodes to an unlabelled pool (their rows, not copies). Each reward-model minibatch of labelled
queries then comes with ``batch_size × mu`` pairs from the pool: each member labels them itself, the
pair getting the segment that member prefers, and a pair whose preferred probability is below
``threshold`` is masked out; the loss adds ``lambda_u ×`` the mean over the whole unlabelled batch of
the masked cross-entropy. Pseudo-labels are recomputed at every step and never join the labelled set.
Defaults from the official code (github.com/alinlab/SURF): ``reward_model_semi_dataaug.py``
(``semi_train_reward``, ``put_unlabeled_queries``) and its README's walker-walk command
(``threshold_u 0.99``, ``mu 4``, ``lambda_u 1``, ``inv_label_ratio 100``; 10 for Meta-World).

SURF also crops segments in time (stored 10 steps longer, crops of the labelled length ± 5):
``reward_model.crop=surf`` (pbrl/reward/crop.py); the pseudo-labels then come from the uncropped centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.errors import ConfigError


@dataclass
class SurfConfig:
    threshold: float = 0.99  # threshold_u: the least preferred-segment probability a pseudo-label needs
    mu: int = 4  # unlabelled pairs per labelled one in a minibatch
    lambda_u: float = 1.0  # weight of the unlabelled loss
    inv_label_ratio: int = 100  # unlabelled pairs added per query asked
    capacity: int = 100_000  # the pool keeps the newest this many pairs (rows: 2 x segment int64 each)


class UnlabelledPool:
    """Rows of unlabelled segment pairs in the episode store, and SURF's loss on them; see the module docstring."""

    def __init__(self, cfg: SurfConfig, k: int, length: int):
        self.cfg, self.k, self.length = cfg, k, length
        self.rows = np.zeros((0, k, length), np.int64)
        self.store = None  # the episode store the rows index (the learner sets it each round)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, store, count: int, rng: np.random.Generator, last_episodes: int) -> None:
        """``count`` random pairs of the last ``last_episodes`` episodes join; past capacity the oldest leave."""
        self.store = store
        rows = store.sample_segments(self.length, count * self.k, rng, last_episodes)
        rows = rows.reshape(count, self.k, self.length)
        self.rows = np.concatenate([self.rows, rows])[-self.cfg.capacity:]

    def inputs(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random pooled pairs as joined ``(obs, action)`` steps ``[n, K, T, obs_dim + action_dim]``."""
        pick = self.rows[torch.randint(0, len(self.rows), (n,), generator=generator).numpy()]
        obs, action = torch.from_numpy(self.store.obs[pick]), torch.from_numpy(self.store.action[pick])
        return torch.cat([obs, action], dim=-1)

    def loss(self, scores: torch.Tensor, label_scores: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SURF's unlabelled loss of each member's scores ``[E, m, K]``, and the share of pairs it kept.

        ``label_scores`` (default: ``scores``) give the pseudo-labels: with SURF's crop, the uncropped centre."""
        with torch.no_grad():
            probs = torch.softmax(scores if label_scores is None else label_scores, dim=-1)
            confidence, pseudo = probs.max(-1)  # [E, m]: each member's own pseudo-label
            mask = (confidence >= self.cfg.threshold).float()
        nll = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), pseudo.reshape(-1), reduction="none")
        return self.cfg.lambda_u * (nll * mask.reshape(-1)).mean(), mask.mean()


def make_pool(rm: Mapping[str, Any], k: int, length: int) -> UnlabelledPool | None:
    """The pool of ``reward_model.semi=true`` (settings under ``reward_model.surf``), else None."""
    semi = rm.get("semi", False)
    if not isinstance(semi, bool):
        raise ConfigError("reward_model.semi", f"got {semi!r}; allowed: true, false")
    if not semi:
        return None
    given = dict(rm.get("surf") or {})
    fields = set(SurfConfig.__dataclass_fields__)
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ConfigError(f"reward_model.surf.{unknown[0]}",
                          f"not a SURF setting; allowed: {', '.join(sorted(fields))}")
    cfg = SurfConfig(**given)
    if not 0.5 <= cfg.threshold <= 1:
        raise ConfigError("reward_model.surf.threshold", f"got {cfg.threshold!r}; must be in [0.5, 1]")
    for name in ("mu", "inv_label_ratio", "capacity"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"reward_model.surf.{name}", f"got {value!r}; must be an integer >= 1")
    if cfg.lambda_u < 0:
        raise ConfigError("reward_model.surf.lambda_u", f"got {cfg.lambda_u!r}; must be >= 0")
    return UnlabelledPool(cfg, k, length)
