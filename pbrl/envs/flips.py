"""Flips counted from the simulator state: backward rotations of a planar body's torso and landed flips.

For MuJoCo's planar walkers (Hopper, Walker2d, HalfCheetah) the torso's pitch is the hinge
``rooty``, qpos[2], an angle that is not wrapped: it keeps adding up over turns. A positive pitch
tilts the torso towards +x, the way the body walks, so a *backward* rotation (a backflip) makes
the pitch decrease. qpos[1] is the torso's height.

- ``backward_rotations``: the largest backward turn reached in an episode, from its start, in
  turns (2π). Forward turns never count, and rocking back and forth does not add up.
- ``completed_rotations``: whole backward turns, ``floor`` of the above.
- ``landed_flips``: completed turns after which the body stood upright on its foot again (torso
  within ``upright_rad`` of vertical and at least ``min_height`` high) before the next turn was
  completed.
"""

from __future__ import annotations

import math

import numpy as np

PITCH_QPOS, HEIGHT_QPOS = 2, 1  # rooty and rootz of Hopper, Walker2d and HalfCheetah


def backward_rotations(pitch: np.ndarray) -> float:
    """The largest backward turn from the first pitch, in turns (≥ 0)."""
    pitch = np.asarray(pitch, np.float64)
    if len(pitch) == 0:
        return 0.0
    return float(max(0.0, np.max(pitch[0] - pitch)) / (2 * math.pi))


def completed_rotations(pitch: np.ndarray) -> int:
    """Whole backward turns completed (forward flips are not counted)."""
    return int(math.floor(backward_rotations(pitch) + 1e-9))


def landed_flips(pitch: np.ndarray, height: np.ndarray, upright_rad: float = 0.4, min_height: float = 0.8) -> int:
    """Completed backward turns followed by standing upright before the next turn completes."""
    pitch, height = np.asarray(pitch, np.float64), np.asarray(height, np.float64)
    turned = np.maximum.accumulate(pitch[0] - pitch) / (2 * math.pi)  # the record backward turn so far
    wrapped = np.abs(np.arctan2(np.sin(pitch), np.cos(pitch)))
    upright = (wrapped < upright_rad) & (height >= min_height)
    landed = 0
    for n in range(1, completed_rotations(pitch) + 1):
        start = int(np.argmax(turned >= n - 1e-9))  # the step the n-th turn completes
        end = int(np.argmax(turned >= n + 1 - 1e-9)) if turned[-1] >= n + 1 - 1e-9 else len(pitch)
        landed += bool(upright[start:end].any())
    return landed


def flip_metrics(qpos: np.ndarray) -> dict[str, float]:
    """The flip metrics of one episode from its ``[T, nq]`` positions."""
    pitch, height = qpos[:, PITCH_QPOS], qpos[:, HEIGHT_QPOS]
    return {"rotations": backward_rotations(pitch), "completed": completed_rotations(pitch),
            "landed": landed_flips(pitch, height)}
