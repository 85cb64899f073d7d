"""PPO on the true reward: pbrl's PPO beside stable-baselines3's PPO with the same hyperparameters.

    python experiments/ppo_baseline.py                           # HalfCheetah-v5 and Hopper-v5, seeds 0-4, 1M steps
    python experiments/ppo_baseline.py --seeds 0 --tasks hopper  # a start
    python experiments/ppo_baseline.py --report-only             # the table from what has finished

Both sides read their settings from the same preset (``experiment=ppo_<task>``: rl-zoo3's tuned
PPO for the task, 1M steps, observation and reward normalisation) and are evaluated the same way:
every 25k steps, 10 deterministic episodes of the env as registered with start seeds
``seed + 1_000_000 + i``. pbrl's runs are one hydra multirun (resumable from snapshots); SB3's runs
are plain processes (2 side by side) that write the same files (``config.yaml``, ``metrics.csv``,
``summary.json``) into ``runs/ppo_baseline/sb3/...``, so that ``pbrl-report`` reads both; an SB3
run that was interrupted resumes from its last snapshot (``run_sb3``). The report groups by ``tag``
(``ppo`` = pbrl, ``sb3_ppo``) and ``env.id``: IQM with stratified-bootstrap 95 % CIs over seeds. Results:
experiments/results/ppo_baseline/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import RESULTS, ROOT, RUNS, multirun, report, restore

TASKS = ("halfcheetah", "hopper")
EVAL_EPISODES = 10


def preset(task: str, seed: int, steps: int | None, extra: tuple[str, ...] = ()) -> dict:
    """The composed pbrl config of ``experiment=ppo_<task>``: the one source of both sides' settings."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [f"experiment=ppo_{task}", f"seed={seed}"] + ([f"steps={steps}"] if steps else []) + list(extra)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)


def run_sb3(task: str, seed: int, steps: int | None, run_dir: Path, extra: tuple[str, ...] = ()) -> None:
    """One stable-baselines3 PPO run with the preset's hyperparameters, logged like a pbrl run.

    Every ``snapshot.every`` steps (at a rollout boundary, after its update) it saves the model with its
    optimiser, the VecNormalize statistics and the evaluations so far to ``<run_dir>/resume``; a rerun
    continues from there with ``reset_num_timesteps=False`` (so the learning-rate and clip schedules go on).
    The episode in progress is lost: the envs restart with fresh seeds (``seed + 10_000 * resumes``)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    cfg = preset(task, seed, steps, extra)
    a, env_id = cfg["agent"], cfg["env"]["id"]
    assert cfg["teacher"]["name"] == "none" and a["name"] == "ppo" and cfg["seed_steps"] == 0, "true-reward PPO only"
    cfg["tag"] = "sb3_ppo"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    ckpt, ckpt_old, ckpt_tmp = run_dir / "resume", run_dir / "resume.old", run_dir / "resume.tmp"
    found = next((d for d in (ckpt, ckpt_old) if (d / "state.json").exists()), None)
    fresh = {"rows": [], "wall_time_s": 0.0, "cpu_time_s": 0.0, "resumes": -1}
    state = json.loads((found / "state.json").read_text()) if found else fresh
    resumes = state["resumes"] + 1
    normalize = a["normalize_obs"] or a["normalize_reward"]
    venv = make_vec_env(env_id, n_envs=a["n_envs"], seed=seed + 10_000 * resumes)
    if found:
        if normalize:
            venv = VecNormalize.load(str(found / "vecnormalize.pkl"), venv)
        model = PPO.load(found / "model.zip", env=venv, device="cpu")  # force_reset: the envs start new episodes
        model.set_random_seed(seed + 10_000 * resumes)
        print(f"{run_dir.name}: resuming at step {model.num_timesteps} (resume {resumes})", flush=True)
    else:
        if normalize:
            venv = VecNormalize(venv, norm_obs=a["normalize_obs"], norm_reward=a["normalize_reward"], gamma=a["gamma"],
                                clip_obs=a["clip_obs"], clip_reward=a["clip_reward"])
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[a["activation"]]
        net = [a["hidden_dim"]] * a["depth"]
        model = PPO("MlpPolicy", venv, n_steps=a["n_steps"], batch_size=a["batch_size"], n_epochs=a["n_epochs"],
                    learning_rate=a["lr"], gamma=a["gamma"], gae_lambda=a["gae_lambda"], clip_range=a["clip_range"],
                    clip_range_vf=a["clip_range_vf"], normalize_advantage=a["normalize_advantage"],
                    ent_coef=a["ent_coef"], vf_coef=a["vf_coef"], max_grad_norm=a["max_grad_norm"],
                    target_kl=a["target_kl"], seed=seed, device="cpu",
                    policy_kwargs=dict(net_arch=dict(pi=net, vf=net), activation_fn=activation,
                                       log_std_init=a["log_std_init"], ortho_init=a["ortho_init"]))
    eval_env = gym.make(env_id)
    rows: list[dict] = state["rows"]
    started = time.perf_counter() - state["wall_time_s"]
    cpu_started = time.process_time() - state["cpu_time_s"]  # CPU seconds: the run's cost without pauses

    def evaluate(step: int) -> None:
        returns = []
        for i in range(EVAL_EPISODES):
            obs, _ = eval_env.reset(seed=seed + 1_000_000 + i)
            done, total = False, 0.0
            while not done:
                o = venv.normalize_obs(obs) if isinstance(venv, VecNormalize) else obs
                action, _ = model.predict(o, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        rows.append({"env_step": step, "eval_return_mean": float(np.mean(returns)),
                     "eval_return_std": float(np.std(returns)), "wall_time_s": time.perf_counter() - started})
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def snapshot() -> None:
        """Write the new snapshot beside the old one, then swap: a kill at any point leaves one readable."""
        shutil.rmtree(ckpt_tmp, ignore_errors=True)
        ckpt_tmp.mkdir()
        model.save(ckpt_tmp / "model.zip")
        if isinstance(venv, VecNormalize):
            venv.save(str(ckpt_tmp / "vecnormalize.pkl"))
        (ckpt_tmp / "state.json").write_text(json.dumps(
            {"env_step": model.num_timesteps, "rows": rows, "wall_time_s": time.perf_counter() - started,
             "cpu_time_s": time.process_time() - cpu_started, "resumes": resumes}))
        shutil.rmtree(ckpt_old, ignore_errors=True)
        if ckpt.exists():
            ckpt.rename(ckpt_old)
        ckpt_tmp.rename(ckpt)
        shutil.rmtree(ckpt_old, ignore_errors=True)

    every, snap_every = cfg["eval"]["every"], cfg["snapshot"]["every"]

    class Callback(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % every < a["n_envs"] and self.num_timesteps >= every:
                evaluate(self.num_timesteps)
            return True

        def _on_rollout_start(self) -> None:  # the previous rollout's update is done: a consistent point
            if snap_every and self.num_timesteps // snap_every > state.get("env_step", 0) // snap_every:
                snapshot()
                state["env_step"] = self.num_timesteps

    state.setdefault("env_step", model.num_timesteps)
    model.learn(total_timesteps=cfg["steps"] - model.num_timesteps, callback=Callback(), reset_num_timesteps=not found)
    if not rows or rows[-1]["env_step"] != model.num_timesteps:
        evaluate(model.num_timesteps)
    wall = time.perf_counter() - started
    resumed = {"resumes": resumes} if resumes else {}
    write_sb3_summary(run_dir, env_id, seed, model.num_timesteps, rows, wall,
                      cpu_time_s=time.process_time() - cpu_started, **resumed)
    shutil.rmtree(ckpt, ignore_errors=True)


def write_sb3_summary(run_dir: Path, env_id: str, seed: int, steps: int, rows: list[dict], wall: float,
                      **extra) -> None:
    summary = {"env_id": env_id, "seed": seed, "env_steps": steps, "agent": "sb3_ppo",
               "final_eval_return": rows[-1]["eval_return_mean"],
               "best_eval_return": max(r["eval_return_mean"] for r in rows),
               "final_eval_return_std": rows[-1]["eval_return_std"], "wall_time_s": wall,
               "steps_per_s": steps / wall, "teacher": "none", "threads": 1, **extra}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def summary_from_metrics(task: str, seed: int, steps: int | None) -> bool:
    """An SB3 run stopped after its final evaluation but before its summary (the last lines of ``run_sb3``) is
    complete: write its summary.json from metrics.csv, marked as such, instead of training 1M steps again."""
    run_dir = sb3_dir(task, seed)
    if not (run_dir / "metrics.csv").exists():
        return False
    with open(run_dir / "metrics.csv") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    target = steps or preset(task, seed, None)["steps"]
    if not rows or rows[-1]["env_step"] < target:
        return False
    env_id = preset(task, seed, steps)["env"]["id"]
    write_sb3_summary(run_dir, env_id, seed, int(rows[-1]["env_step"]), rows, rows[-1]["wall_time_s"],
                      summary_from_metrics=True)
    print(f"{run_dir.name}: its final evaluation was logged before it stopped; summary.json written from metrics.csv")
    return True


def sb3_dir(task: str, seed: int) -> Path:
    return RUNS / "ppo_baseline" / "sb3" / f"experiment=ppo_{task},seed={seed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, help="override the presets' 1M steps (a shorter probe)")
    parser.add_argument("--only", choices=("pbrl", "sb3"), help="run one side only")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--sb3-run", nargs=2, metavar=("TASK", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/
    if args.sb3_run:
        task, seed = args.sb3_run[0], int(args.sb3_run[1])
        return run_sb3(task, seed, args.steps, sb3_dir(task, seed))
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    steps = [f"steps={args.steps}"] if args.steps else []
    if not args.report_only:
        if args.only != "sb3":
            multirun(RUNS / "ppo_baseline" / "pbrl",
                     [f"experiment={','.join(f'ppo_{t}' for t in tasks)}", f"seed={args.seeds}", *steps])
        if args.only != "pbrl":
            todo = [(t, s) for t in tasks for s in seeds
                    if not (sb3_dir(t, s) / "summary.json").exists() and not summary_from_metrics(t, s, args.steps)]
            extra = ["--steps", str(args.steps)] if args.steps else []

            def one(job):
                cmd = [sys.executable, __file__, "--sb3-run", job[0], str(job[1]), *extra]
                print("+", " ".join(cmd[1:]), flush=True)
                return subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(one, todo))
    report([RUNS / "ppo_baseline" / "pbrl", RUNS / "ppo_baseline" / "sb3"], RESULTS / "ppo_baseline", "tag,env.id",
           "PPO on the true reward: pbrl vs stable-baselines3, same hyperparameters (rl-zoo3 presets)")


if __name__ == "__main__":
    main()
