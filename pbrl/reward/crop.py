"""Temporal cropping of labelled segments: QPA's (Hu et al., ICLR 2024) and SURF's (Park et al., ICLR 2022).

Each labelled query is trained on ``crops`` random crops instead of its whole segments: per crop a
length ``L`` uniform in ``[T - shorten_max, T - shorten_min]``, shared by the query's K segments, and
for each segment its own start in ``[0, T - L]``; a segment's score is its per-step rewards summed
over its crop, and the query's label is the label of every crop. Defaults from the official code
(github.com/huxiao09/QPA): ``reward_model.py`` ``get_cropping_mask`` (lengths ``S-15 .. S-5``) and
``config/train_QPA.yaml`` ``data_aug_ratio: 20``.

SURF's crop (``reward_model.crop=surf``) stores every queried segment ``2 × window`` steps longer than
``feedback.segment``; the teacher judges the centre ``segment`` steps, and each training step draws one
crop of length ``segment ± range``, as ``get_cropping_mask`` in alinlab/SURF's
``reward_model_semi_dataaug.py`` does (``dataaug_window: 5``, ``crop_range: 5``). Its pseudo-labels
(``reward_model.semi``) then come from the centre window, uncropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from pbrl.errors import ConfigError, check_choice

CROPS = ("none", "qpa", "surf")


@dataclass
class Crop:
    crops: int = 20  # crops per query (QPA's data_aug_ratio)
    shorten_min: int = 5  # a crop is this many steps shorter than the segment, at least ...
    shorten_max: int = 15  # ... and at most
    window: int = 0  # SURF: segments are stored this many steps longer at each end; the teacher sees the centre

    def masks(self, n: int, k: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``[crops, n, k, length]`` 0/1 float masks: one crop length per (crop, query), one start per segment."""
        lo = max(1, length - self.shorten_max)
        hi = max(lo, length - self.shorten_min)
        crop_len = torch.randint(lo, hi + 1, (self.crops, n, 1), generator=generator)  # shared by the K segments
        start = (torch.rand(self.crops, n, k, generator=generator) * (length - crop_len + 1)).long()
        t = torch.arange(length)
        return ((t >= start[..., None]) & (t < (start + crop_len)[..., None])).float()

    def scores(self, step_rewards: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Cropped scores: per-step rewards ``[E, p, K, T]``, member masks ``[E, C, p, K, T]`` -> ``[E, C*p, K]``."""
        e = step_rewards.shape[0]
        out = torch.einsum("epkt,ecpkt->ecpk", step_rewards, masks)
        return out.reshape(e, -1, out.shape[-1])


def make_crop(rm: Mapping[str, Any], length: int) -> Crop | None:
    """The Crop of ``reward_model.crop`` (qpa or surf; settings under ``reward_model.crop_settings``), else None."""
    kind = rm.get("crop", "none")
    check_choice("reward_model.crop", kind, CROPS)
    if kind == "none":
        return None
    settings = dict(rm.get("crop_settings") or {})
    window, spread = settings.pop("window", 5), settings.pop("range", 5)
    if kind == "surf":  # one crop of segment ± range out of segment + 2 window steps
        for name, value in (("window", window), ("range", spread)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"reward_model.crop_settings.{name}", f"got {value!r}; must be an integer >= 0")
        if spread > 2 * window or spread >= length:
            raise ConfigError("reward_model.crop_settings.range", f"got {spread}; crops of segment ± range must fit in "
                                                                  f"segment + 2 window = {length + 2 * window} steps")
        return Crop(crops=1, shorten_min=2 * window - spread, shorten_max=2 * window + spread, window=window)
    unknown = sorted(set(settings) - {"crops", "shorten_min", "shorten_max"})
    if unknown:
        raise ConfigError(f"reward_model.crop_settings.{unknown[0]}",
                          "not a crop setting; allowed: crops, shorten_min, shorten_max (qpa), window, range (surf)")
    crop = Crop(**settings)
    for name in ("crops", "shorten_min", "shorten_max"):
        value = getattr(crop, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "crops" else 0):
            raise ConfigError(f"reward_model.crop_settings.{name}", f"got {value!r}; must be an integer >= "
                                                                    f"{1 if name == 'crops' else 0}")
    if crop.shorten_min > crop.shorten_max or crop.shorten_min >= length:
        raise ConfigError("reward_model.crop_settings.shorten_min",
                          f"got {crop.shorten_min} (shorten_max {crop.shorten_max}, segment {length}); needs "
                          "shorten_min <= shorten_max and shorten_min < feedback.segment")
    return crop
