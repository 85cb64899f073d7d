"""How much of a HalfCheetah run's experience is upside down (torso pitch beyond ±90°)?

    python experiments/halfcheetah_flip.py runs/probe/halfcheetah_perfect_reward/seed=0 [more run dirs]

Reads the episode store of each run's ``snapshot.pt`` (a run still going, an interrupted one, or one
trained with ``snapshot.keep=true``) and prints the fraction of stored states whose torso pitch
(MuJoCo ``qpos[2]``, the stored simulator state) is past ±π/2, by phase of the run.
``back_share(run, 70_000, 100_000)`` is issue 17's measure of a HalfCheetah arm: the share of the
training steps from 70k to 100k spent on the back (feedback_efficiency.py reports it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def upside_down(pitch: np.ndarray) -> np.ndarray:
    """Whether each torso pitch (radians, any number of turns) is past ±90°, i.e. the cheetah is on its back."""
    return np.abs(np.angle(np.exp(1j * pitch))) > np.pi / 2  # wrapped to (-π, π] first


def stored_pitch(run: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """``(env_step, torso pitch, snapshot step)`` of every stored training step in ``run``'s snapshot.pt, or None."""
    path = Path(run) / "snapshot.pt"
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False, map_location="cpu")
    store = state.get("store") or state["buffer"]  # the episode store (older snapshots: the replay buffer)
    n, at = int(store["size"]), int(state["step"])
    rows = np.arange(n)
    if n == int(store.get("capacity", n)) and "pos" in store:  # a full ring: the oldest row is at pos
        rows = np.roll(rows, -int(store["pos"]))
    if "env" in store and len(np.unique(np.asarray(store["env"])[:n])) > 1:
        raise ValueError(f"{run}: steps of several envs interleave; this reader assumes one env (SAC)")
    pitch = np.asarray(store["sim_state"])[rows, 2]
    return at - n + np.arange(n), pitch, at  # one stored row per env step, the newest at the snapshot's step


def back_share(run: Path, start: int, end: int) -> float | None:
    """Share of the training steps in ``[start, end)`` spent upside down, or None (no snapshot, or it ends earlier)."""
    stored = stored_pitch(run)
    if stored is None or stored[2] < end:
        return None
    steps, pitch, _ = stored
    window = (steps >= start) & (steps < end)
    return float(upside_down(pitch[window]).mean()) if window.any() else None


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for run in sys.argv[1:]:
        stored = stored_pitch(Path(run))
        if stored is None:
            print(f"{run}: no snapshot.pt")
            continue
        steps, pitch, at = stored
        flipped = upside_down(pitch)
        n = len(steps)
        phases = [(0, 1000), (1000, 10000), (10000, 20000), (max(0, n - 5000), n)]
        cells = ", ".join(f"steps {a}-{b}: {flipped[a:b].mean():.0%}" for a, b in phases if b > a)
        print(f"{run} (step {at}): upside down {cells}")


if __name__ == "__main__":
    main()
