"""Diagnostic: does a tanh reward model stop telling fast running from faster running?

    python experiments/probe_reward_saturation.py RUN_DIR [--labels 1000] [--seeds 0,1,2]

RUN_DIR is a finished HalfCheetah run (its ``agent.pt`` and ``config.yaml``). The probe rolls the
trained policy out with Gaussian action noise of several sizes (a spread of speeds, from random
flailing to the policy's best running), cuts the episodes into segments of the run's length, and
labels random pairs with the oracle (the segment with the larger true return wins). It then trains
the reward model of the run's config in PEBBLE's way (10 rounds, each adding a tenth of the labels
and fitting on all) with ``reward_model.output=tanh`` and ``=linear``, and prints, on segments it
never trained on:

- Spearman correlation of learned and true segment return, over all segments and within the
  segments of the fastest rollouts (noise 0 and 0.1: what the agent sees once it runs);
- the mean learned reward per step on the fastest rollouts (tanh's ceiling is 1).

In the HalfCheetah runs of ``feedback_efficiency.py`` the learned return of an eval episode sat at
~970 of tanh's ceiling of 1000 from 150k steps on while the true return still grew; this probe asks
whether that ceiling, not the labels, limits what the agent can learn.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from pbrl.agents import make_agent
from pbrl.envs.make import make_env
from pbrl.reward.labels import LabelSet
from pbrl.reward.model import RewardModel, RewardModelConfig

NOISES = (0.0, 0.1, 0.3, 0.6, 1.0, "random")


def rollouts(run: Path, episodes: int, seed: int):
    """Obs, actions, true rewards ``[n_ep, 1000, ·]`` and each episode's noise level."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    env = make_env(cfg["env"]["id"], cfg["env"].get("kwargs"), cfg["env"].get("max_episode_steps"))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = make_agent(cfg["agent"], obs_dim, act_dim, torch.device("cpu"), "fp32")
    agent.load_state_dict(torch.load(run / "agent.pt", weights_only=False))
    rng = np.random.default_rng(seed)
    data, noise_of = [], []
    for noise in NOISES:
        for e in range(episodes):
            o, _ = env.reset(seed=seed * 1000 + len(data))
            obs, act, rew = [], [], []
            for _ in range(1000):
                if noise == "random":
                    a = env.action_space.sample()
                else:
                    a = np.clip(agent.act(o, deterministic=True) + noise * rng.standard_normal(act_dim), -1, 1)
                o2, r, term, trunc, _ = env.step(a)
                obs.append(o), act.append(a), rew.append(r)
                o = o2
                if term or trunc:
                    break
            data.append((np.array(obs, np.float32), np.array(act, np.float32), np.array(rew)))
            noise_of.append(noise)
    return data, noise_of, cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=3, help="rollouts per noise level")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    data, noise_of, cfg = rollouts(args.run, args.episodes, 0)
    length = int(cfg["feedback"]["segment"])
    seg_obs, seg_act, seg_ret, seg_fast = [], [], [], []
    for (o, a, r), noise in zip(data, noise_of):
        for s in range(0, len(r) - length + 1, length):
            seg_obs.append(o[s:s + length]), seg_act.append(a[s:s + length]), seg_ret.append(r[s:s + length].sum())
            seg_fast.append(noise in (0.0, 0.1))
    seg_obs, seg_act = np.stack(seg_obs), np.stack(seg_act)
    seg_ret, seg_fast = np.array(seg_ret), np.array(seg_fast)
    print(f"{len(seg_ret)} segments of {length} steps from {len(data)} rollouts in {time.time() - t0:.0f} s; "
          f"true segment return {seg_ret.min():.0f} .. {seg_ret.max():.0f}, fastest rollouts "
          f"{seg_ret[seg_fast].min():.0f} .. {seg_ret[seg_fast].max():.0f}")

    def spearman(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.corrcoef(np.argsort(np.argsort(x)), np.argsort(np.argsort(y)))[0, 1])

    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        rng = np.random.default_rng(seed)
        held_out = rng.random(len(seg_ret)) < 0.3
        train = np.flatnonzero(~held_out)
        for output in ("tanh", "linear"):
            torch.manual_seed(seed)
            rm_cfg = RewardModelConfig(**{**cfg["reward_model"], "output": output})
            model = RewardModel(seg_obs.shape[-1], seg_act.shape[-1], rm_cfg)
            labels = LabelSet(2, length, seg_obs.shape[-1], seg_act.shape[-1])
            gen = torch.Generator().manual_seed(seed)
            pair_rng = np.random.default_rng(seed + 100)
            for _ in range(10):
                pairs = np.stack([pair_rng.choice(train, 2, replace=False) for _ in range(args.labels // 10)])
                first_wins = seg_ret[pairs[:, 0]] >= seg_ret[pairs[:, 1]]
                labels.add(seg_obs[pairs], seg_act[pairs], np.where(first_wins[:, None], [0, 1], [1, 0]),
                           np.zeros(len(pairs), bool))
                model.fit(labels, gen)
            with torch.no_grad():
                step_r = model.reward(torch.as_tensor(seg_obs), torch.as_tensor(seg_act)).numpy()  # [S, T]
            learned = step_r.sum(-1)
            fast_held = held_out & seg_fast
            rows.append((output, seed, spearman(learned[held_out], seg_ret[held_out]),
                         spearman(learned[fast_held], seg_ret[fast_held]),
                         float(step_r[seg_fast].mean())))
            print(f"  seed {seed} {output:6s}: all {rows[-1][2]:.3f}  fastest {rows[-1][3]:.3f}  "
                  f"reward/step on fastest {rows[-1][4]:.3f}  ({time.time() - t0:.0f} s)", flush=True)

    print(f"\nHeld-out Spearman correlation of learned vs true segment return ({args.labels} oracle labels, "
          f"{len(rows) // 2} seeds, mean ± std)\n")
    print("| output | all segments | fastest rollouts only | learned reward per step, fastest rollouts |")
    print("|---|---|---|---|")
    for output in ("tanh", "linear"):
        r = np.array([row[2:] for row in rows if row[0] == output])
        m, s = r.mean(0), r.std(0)
        print(f"| {output} | {m[0]:.3f} ± {s[0]:.3f} | {m[1]:.3f} ± {s[1]:.3f} | {m[2]:.3f} ± {s[2]:.3f} |")


if __name__ == "__main__":
    main()
