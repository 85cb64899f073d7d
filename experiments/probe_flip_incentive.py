"""Diagnostic: does a run's learned reward still pay more for running upright than on its back?

    python experiments/probe_flip_incentive.py RUN_DIR UPRIGHT_RUN_DIR [--episodes 2]

RUN_DIR is a HalfCheetah PEBBLE run with a ``snapshot.pt`` (a run still going, an interrupted one,
or one trained with ``snapshot.keep=true``): its reward model and its policy are read from it.
UPRIGHT_RUN_DIR is a finished run whose ``agent.pt`` runs upright (e.g. a SAC run on the true
reward). The probe rolls out, for whole 1000-step episodes:

- the upright policy, deterministic and with Gaussian action noise 0.3;
- the run's own policy (on its back in the runs this probe was written for);
- uniform random actions;

and prints each one's true return, its return under the run's learned reward (ensemble mean, the
reward SAC is trained on) with the learned reward per step, and its upside-down fraction. A second
table bins the run's stored transitions by their true reward (from the teacher's ledger) and
compares the learned reward of upside-down and upright states within each bin: a model that
favoured being on its back would pay more for it at the same true reward.

It separates two explanations of a run that stays on its back: a learned reward that does not
prefer upright running (the labels' fault), or one that does but whose preference is too small for
SAC to leave the flipped gait (the optimisation's, or the reward's scale).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from pbrl.agents import make_agent
from pbrl.envs.make import make_env
from pbrl.reward.model import RewardModel, RewardModelConfig

from halfcheetah_flip import stored_pitch, upside_down


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("upright", type=Path)
    parser.add_argument("--episodes", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    state = torch.load(args.run / "snapshot.pt", weights_only=False)
    cfg = state["config"]
    env = make_env(cfg["env"]["id"], cfg["env"].get("kwargs"), cfg["env"].get("max_episode_steps"))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    model = RewardModel(obs_dim, act_dim, RewardModelConfig(**cfg["reward_model"]))
    feedback = state.get("feedback", state)  # snapshots since the agent-agnostic loop nest the reward side
    model.load_state_dict(feedback["learner"]["model"])

    def agent(weights: dict):
        a = make_agent(cfg["agent"], obs_dim, act_dim, torch.device("cpu"), "fp32")
        a.load_state_dict(weights)
        return a

    upright_cfg = yaml.safe_load((args.upright / "config.yaml").read_text())
    assert upright_cfg["env"]["id"] == cfg["env"]["id"], "both runs must be on the same env"
    upright = agent(torch.load(args.upright / "agent.pt", weights_only=False))
    own = agent(state["agent"])
    rng = np.random.default_rng(0)

    print(f"learned reward of {args.run} (step {state['step']}, {feedback['learner']['asked']} labels, "
          f"output {cfg['reward_model']['output']})")
    print("| policy | true return | learned return | learned reward / step | upside down |")
    print("|---|---|---|---|---|")
    for name, policy, noise in (("upright run's policy", upright, 0.0), ("upright, action noise 0.3", upright, 0.3),
                                ("this run's policy", own, 0.0), ("random actions", None, 0.0)):
        true, learned, flipped, steps = [], [], [], 0
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=episode)
            seen, acts, rewards, done = [], [], [], False
            while not done:
                if policy is None:
                    action = env.action_space.sample()
                else:
                    action = np.clip(policy.act(obs, deterministic=True) + noise * rng.standard_normal(act_dim), -1, 1)
                next_obs, reward, terminated, truncated, _ = env.step(action)
                seen.append(obs), acts.append(action), rewards.append(reward)
                obs, done = next_obs, terminated or truncated
            o = torch.as_tensor(np.array(seen), dtype=torch.float32)
            with torch.no_grad():
                learned.append(float(model.reward(o, torch.as_tensor(np.array(acts), dtype=torch.float32)).sum()))
            true.append(sum(rewards))
            flipped.append(float(upside_down(o[:, 1].numpy()).mean()))  # obs[1] is the torso pitch
            steps += len(seen)
        per_step = sum(learned) / steps
        print(f"| {name} | {np.mean(true):.0f} | {np.mean(learned):.1f} | {per_step:.3f} | {np.mean(flipped):.0%} |")

    buffer = state["agent"]["buffer"] if "agent" in state and "buffer" in state["agent"] else state["buffer"]
    n = int(buffer["size"])
    learned = buffer["reward"][:n].float().reshape(-1).numpy()  # relabelled with the latest model
    true = np.asarray(feedback["ledger"]["reward"][:n], dtype=np.float64).reshape(-1)
    flipped = upside_down(stored_pitch(args.run)[1][:n])  # the torso pitch of each stored step
    print(f"\nstored transitions ({n}, {flipped.mean():.0%} upside down): mean learned reward by true-reward bin")
    print("| true reward per step | upside down | upright |")
    print("|---|---|---|")
    for lo, hi in ((-2, -0.5), (-0.5, 0), (0, 0.5), (0.5, 1), (1, 2), (2, 4), (4, 8)):
        inside = (true >= lo) & (true < hi)
        cells = [f"{learned[inside & side].mean():.3f} (n={int((inside & side).sum())})"
                 if (inside & side).sum() >= 50 else "–" for side in (flipped, ~flipped)]
        print(f"| [{lo}, {hi}) | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
