"""Diagnostic (no training): does a finished run's learned reward still prefer better policies than its own?

    python experiments/probe_reward_ceiling.py MODEL_RUN [MODEL_RUN ...] --policies RUN [RUN ...] [--episodes 5]

A preference run (PrefPPO or PEBBLE) stops asking at its last round; from then on the agent climbs a
frozen learned reward. When it plateaus below the true-reward agent, either the learned reward has
no more to give (it does not rank the better policies above the run's own: a ceiling in the labels)
or it does and the agent fails to climb it (an optimisation gap). This probe tells which.

Each ``--policies`` RUN is a finished run folder (``agent.pt``, ``config.yaml``): true-reward runs
and the preference runs themselves. Each policy plays ``--episodes`` deterministic episodes with
the evaluation's start seeds; each MODEL_RUN's final reward model (``reward_model.pt``) scores
every episode. The table gives, per policy, its true return, its episode length and each model's
learned return (mean over episodes, the learned reward the agent was trained on: the ensemble mean)
with the learned reward per step beside it, and per model the Spearman correlation between true and
learned return over all episodes. Where episodes can end early (Walker2d, Hopper), the per-step
reward against the length tells whether a policy that falls sooner is paid more per step while it
lasts. Issue 15's PrefPPO gap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from pbrl.agents import make_agent
from pbrl.envs import make_env, spec_of
from pbrl.reward.model import RewardModel, RewardModelConfig


def shown(run: Path) -> str:
    """``run`` relative to the working directory where it lies below it (no machine paths in committed tables)."""
    try:
        return str(run.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return run.name


def load_config(run: Path) -> dict:
    path = run / "config.yaml"
    if not path.is_file():
        raise SystemExit(f"{run}: no config.yaml (not a pbrl run folder)")
    return yaml.safe_load(path.read_text())


def rollouts(run: Path, episodes: int) -> tuple[list[float], list[tuple[np.ndarray, np.ndarray]]]:
    """``episodes`` deterministic episodes of ``run``'s final agent: true returns and (obs, action) arrays."""
    cfg = load_config(run)
    if not (run / "agent.pt").is_file():
        raise SystemExit(f"{run}: no agent.pt (the run has not finished)")
    env_cfg = cfg["env"]
    env = make_env(env_cfg["id"], env_cfg.get("kwargs"), env_cfg.get("max_episode_steps"),
                   action_repeat=env_cfg.get("action_repeat", 1))
    spec = spec_of(env, env_cfg["id"])
    agent = make_agent(cfg["agent"], spec.obs_dim, spec.action_dim, torch.device("cpu"), "fp32",
                       steps=int(cfg["steps"]), buffer_size=1)
    state = torch.load(run / "agent.pt", weights_only=False, map_location="cpu")
    state.pop("buffer", None)  # SAC's replay buffer: only the policy plays here
    agent.load_state_dict(state)
    returns, trajectories = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=int(cfg["seed"]) + 1_000_000 + i)
        seen, acts, total, done = [], [], 0.0, False
        while not done:
            action = agent.act(obs, deterministic=True)
            seen.append(obs)
            acts.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        trajectories.append((np.asarray(seen, np.float32), np.asarray(acts, np.float32)))
    env.close()
    return returns, trajectories


def reward_model(run: Path, obs_dim: int, action_dim: int) -> RewardModel:
    cfg = load_config(run)
    if not (run / "reward_model.pt").is_file():
        raise SystemExit(f"{run}: no reward_model.pt (not a finished preference run)")
    model = RewardModel(obs_dim, action_dim, RewardModelConfig(**cfg["reward_model"]))
    model.load_state_dict(torch.load(run / "reward_model.pt", weights_only=False, map_location="cpu"))
    return model


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def name(run: Path) -> str:
    cfg = load_config(run)
    true = " true-reward" if cfg.get("teacher", {}).get("name") == "none" else ""  # one preset, both arms
    return f"{cfg.get('tag') or cfg['agent']['name']}{true} s{cfg['seed']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_runs", type=Path, nargs="+", help="finished preference runs (reward_model.pt)")
    parser.add_argument("--policies", type=Path, nargs="+", required=True, help="finished runs whose agents play")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    played = {}
    for run in args.policies:
        played[run] = rollouts(run, args.episodes)
        print(f"{name(run)}: true return {np.mean(played[run][0]):.0f}", flush=True)
    obs_dim, action_dim = played[args.policies[0]][1][0][0].shape[1], played[args.policies[0]][1][0][1].shape[1]
    models = {run: reward_model(run, obs_dim, action_dim) for run in args.model_runs}

    learned = {}  # (model, policy) -> learned return per episode
    for m, model in models.items():
        for p, (_, trajectories) in played.items():
            learned[m, p] = [float(model.reward(torch.as_tensor(o), torch.as_tensor(a)).sum())
                             for o, a in trajectories]
    header = ("| policy | true return | length | "
              + " | ".join(f"learned by {name(m)} (per step)" for m in models) + " |")
    lines = [f"Learned vs true return, {args.episodes} deterministic episodes per policy (evaluation seeds)", "",
             "`python experiments/probe_reward_ceiling.py MODEL_RUN ... --policies RUN ...` over these run folders:", "",
             *(f"- {role}: `{shown(run)}`" for role, runs in (("reward model", models), ("policy", played))
               for run in runs), "",
             header, "|" + "---|" * (3 + len(models))]
    for p, (returns, trajectories) in sorted(played.items(), key=lambda kv: np.mean(kv[1][0])):
        steps = sum(len(o) for o, _ in trajectories)
        cells = " | ".join(f"{np.mean(learned[m, p]):.0f} ({np.sum(learned[m, p]) / steps:.2f})" for m in models)
        lines.append(f"| {name(p)} | {np.mean(returns):.0f} ± {np.std(returns):.0f} | {steps / len(trajectories):.0f} "
                     f"| {cells} |")
    true_all = np.concatenate([played[p][0] for p in played])
    rho = " | ".join(f"{spearman(true_all, np.concatenate([learned[m, p] for p in played])):.2f}" for m in models)
    lines.append(f"| Spearman (all episodes) | | | {rho} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
