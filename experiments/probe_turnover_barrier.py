"""Diagnostic (no training): does a learned HalfCheetah reward build a barrier on the way back from the back?

    python experiments/probe_turnover_barrier.py TRUE_RUN MODEL_RUN [MODEL_RUN ...] [--window 50]

TRUE_RUN is a HalfCheetah run on the true reward (``teacher=none``) with a kept ``snapshot.pt``
(``snapshot.keep=true``) whose cheetah fell onto its back and turned upright again: its episode store
has the simulator states (torso pitch), its replay buffer the true reward of every step. Each
MODEL_RUN is a PEBBLE run with a kept snapshot: its reward model (ensemble mean, the reward SAC is
trained on) scores TRUE_RUN's transitions. No agent is trained.

Turn-overs are the steps where the torso goes from upside down (pitch past ±90°) to upright and
stays upright for ``--window`` steps, after at least ``--window`` steps on the back, within one
episode. For each reward (true, and each model's), z-scored over the whole buffer, the probe prints
the mean over three phases:

- ``on back``: every stored step more than ``--window`` steps from any turn-over while upside down;
- ``before``: the ``--window`` steps before each turn-over (the struggle back);
- ``after``: the ``--window`` steps after it (upright again).

A barrier is a learned reward that drops ``before`` the turn-over below its ``on back`` level by
more than the true reward does: then a policy running on its back is pushed away from the states
that lead back upright. Issue 17, item 5 (c).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from halfcheetah_flip import stored_pitch, upside_down

from pbrl.reward.model import RewardModel, RewardModelConfig


def load_snapshot(run: Path) -> dict:
    path = run / "snapshot.pt"
    if not path.exists():
        raise SystemExit(f"{run}: no snapshot.pt (train it with snapshot.keep=true)")
    return torch.load(path, weights_only=False, map_location="cpu")


def reward_model(run: Path, obs_dim: int, action_dim: int) -> RewardModel:
    """The reward model of a PEBBLE run's kept snapshot."""
    state = load_snapshot(run)
    learner = state["feedback"]["learner"] if "feedback" in state else state["learner"]  # older snapshots
    model = RewardModel(obs_dim, action_dim, RewardModelConfig(**state["config"]["reward_model"]))
    model.load_state_dict(learner["model"])
    return model


def turnovers(flipped: np.ndarray, episode_start: np.ndarray, window: int) -> np.ndarray:
    """Indices ``t`` where ``flipped[t-1]`` and not ``flipped[t]``, with ``window`` steps on the back before and
    ``window`` upright after, all inside one episode."""
    found = []
    for t in np.flatnonzero(flipped[:-1] & ~flipped[1:]) + 1:
        lo, hi = t - window, t + window
        if lo < 0 or hi > len(flipped) or episode_start[lo + 1:hi].any():
            continue
        if flipped[lo:t].all() and not flipped[t:hi].any():
            found.append(t)
    return np.asarray(found, dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("true_run", type=Path)
    parser.add_argument("model_runs", type=Path, nargs="+")
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)

    state = load_snapshot(args.true_run)
    buffer = state["agent"]["buffer"]
    n = int(buffer["size"])
    if n != int(state["store"]["size"]) or n >= int(buffer["capacity"]):
        raise SystemExit("the probe needs a replay buffer and episode store that have not wrapped (run <= capacity)")
    obs, action = torch.as_tensor(buffer["obs"][:n]), torch.as_tensor(buffer["action"][:n])
    true_reward = np.asarray(buffer["reward"][:n], dtype=np.float64)
    _, pitch, _ = stored_pitch(args.true_run)
    flipped = upside_down(pitch)
    episode_start = np.asarray(state["store"]["step"])[:n] == 0
    turns = turnovers(flipped, episode_start, args.window)
    if not len(turns):
        raise SystemExit(f"{args.true_run}: no turn-over with {args.window} steps on the back before and upright after")
    near = np.zeros(n, bool)
    for t in turns:
        near[max(0, t - 2 * args.window):t + 2 * args.window] = True
    phases = {"on back": flipped & ~near,
              "before": np.concatenate([np.arange(t - args.window, t) for t in turns]),
              "after": np.concatenate([np.arange(t, t + args.window) for t in turns])}

    rewards = {"true": true_reward}
    for run in args.model_runs:
        model = reward_model(run, obs.shape[1], action.shape[1])
        with torch.no_grad():
            rewards[f"learned ({run.name})"] = np.concatenate([
                model.reward(obs[i:i + 4096], action[i:i + 4096]).numpy() for i in range(0, n, 4096)])

    print(f"{args.true_run}: {n} stored steps, {flipped.mean():.0%} upside down, {len(turns)} turn-overs "
          f"(window {args.window})\n")
    print("| reward (z-scored) | on back | before | after | before - on back |")
    print("|---|---|---|---|---|")
    for name, r in rewards.items():
        z = (r - r.mean()) / (r.std() + 1e-8)
        means = {phase: z[idx].mean() for phase, idx in phases.items()}
        print(f"| {name} | {means['on back']:+.2f} | {means['before']:+.2f} | {means['after']:+.2f} | "
              f"{means['before'] - means['on back']:+.2f} |")


if __name__ == "__main__":
    main()
