"""How much of a HalfCheetah run's experience is upside down (torso pitch beyond ±90°)?

    python experiments/halfcheetah_flip.py runs/probe/halfcheetah_perfect_reward/seed=0 [more run dirs]

Reads the replay buffer of each run's ``snapshot.pt`` (a run still going, an interrupted one, or one
trained with ``snapshot.keep=true``) and prints the fraction of stored states whose torso pitch
(MuJoCo ``qpos[2]``, the stored simulator state) is past ±π/2, by phase of the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def upside_down(pitch: np.ndarray) -> np.ndarray:
    """Whether each torso pitch (radians, any number of turns) is past ±90°, i.e. the cheetah is on its back."""
    return np.abs(np.angle(np.exp(1j * pitch))) > np.pi / 2  # wrapped to (-π, π] first


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for run in sys.argv[1:]:
        path = Path(run) / "snapshot.pt"
        if not path.exists():
            print(f"{run}: no snapshot.pt")
            continue
        state = torch.load(path, weights_only=False)
        buffer = state["buffer"]
        n = buffer["size"]
        flipped = upside_down(buffer["sim_state"].numpy()[:n, 2])
        phases = [(0, 1000), (1000, 10000), (10000, 20000), (max(0, n - 5000), n)]
        cells = ", ".join(f"steps {a}-{b}: {flipped[a:b].mean():.0%}" for a, b in phases if b > a)
        print(f"{run} (step {state['step']}): upside down {cells}")


if __name__ == "__main__":
    main()
