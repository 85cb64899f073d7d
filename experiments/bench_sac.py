"""Throughput of pbrl's SAC against stable-baselines3's SAC, side by side in one process.

    python experiments/bench_sac.py                 # Hopper-v5, 1 and 2 threads, ~4 minutes
    python experiments/bench_sac.py --updates 5000 --threads 1

Same task, network sizes (256x256 actor and twin critics), batch (256), one gradient step per
env step, and the same number of steps for every row: `--seed-steps` random steps (not timed),
then `--updates` timed env steps each followed by one update. Rows: SB3 (fp32), pbrl fp32, pbrl
bf16 (autocast matmuls, fp32 master weights), each with 1 and 2 torch threads. Also printed: the
measured 256x256x256 matmul rate and the fraction of it that pbrl's update reaches (FLOPs per
update counted from the layer sizes). Run it on an otherwise idle machine. Writes a markdown table
to experiments/results/bench_sac.md (use --out to change).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from pbrl.envs.render import configure_mujoco_gl

RESULTS = Path(__file__).resolve().parent / "results"


def matmul_gflops(dtype: torch.dtype, n: int = 256, seconds: float = 1.0) -> float:
    """Measured rate of an n x n x n matmul at the current thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(50):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            a @ b
        count += 100
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def sac_update_flops(obs_dim: int, act_dim: int, hidden: int, depth: int, batch: int, critics: int = 2) -> float:
    """Matmul FLOPs of one SAC update (actor and temperature updated every step).

    F(net) = 2 * batch * sum(in * out). Per update: target (actor fwd + critics fwd), critic
    (fwd + full bwd = 3 F), actor loss (actor fwd + critics fwd + critics input-grad bwd + actor
    full bwd) = 4 F(actor) + 6 * critics * F(critic).
    """
    def forward(dims):
        return 2 * batch * sum(i * o for i, o in zip(dims[:-1], dims[1:]))

    f_actor = forward([obs_dim] + [hidden] * depth + [2 * act_dim])
    f_critic = forward([obs_dim + act_dim] + [hidden] * depth + [1])
    return 4 * f_actor + 6 * critics * f_critic


def bench_sb3(env_id: str, seed_steps: int, updates: int, threads: int) -> float:
    """Env steps/s of SB3 SAC over the timed phase (after its learning_starts)."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == seed_steps:
                self.start = time.perf_counter()
            return True

    torch.set_num_threads(threads)
    model = SAC("MlpPolicy", gym.make(env_id), learning_starts=seed_steps, batch_size=256, buffer_size=seed_steps + updates,
                policy_kwargs=dict(net_arch=[256, 256]), train_freq=1, gradient_steps=1, device="cpu", seed=0)
    clock = Clock()
    model.learn(total_timesteps=seed_steps + updates, callback=clock)
    return updates / (time.perf_counter() - clock.start)


def pbrl_config(env_id: str, seed_steps: int, updates: int, threads: int, precision: str) -> dict:
    """The composed config the pbrl rows time: plain SAC on the env reward, the sizes SB3 runs with (asserted).

    The default config became a small PEBBLE run after this benchmark was first written, and its
    "pbrl" rows then timed feedback rounds too; ``teacher=none`` and the assertions keep it honest.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"env.id={env_id}", f"steps={seed_steps + updates}", f"seed_steps={seed_steps}", f"threads={threads}",
            f"precision={precision}", "device=cpu", f"eval.every={seed_steps}", "eval.episodes=1", "eval.video=none",
            "snapshot.every=0", "logger.tensorboard=false", "progress=false", "teacher=none", "agent=sac"])
    cfg = OmegaConf.to_container(cfg, resolve=True)
    agent = cfg["agent"]
    assert cfg["teacher"]["name"] == "none", "the SAC benchmark must time SAC on the env reward, not PEBBLE"
    assert (agent["name"], agent["hidden_dim"], agent["depth"], agent["num_critics"], agent["batch_size"],
            agent["updates_per_step"]) == ("sac", 256, 2, 2, 256, 1), agent
    return cfg


def bench_pbrl(env_id: str, seed_steps: int, updates: int, threads: int, precision: str) -> float:
    """Env steps/s of pbrl's training loop over the timed phase (its own metrics.csv row)."""
    from pbrl.workspace import Workspace

    cfg = pbrl_config(env_id, seed_steps, updates, threads, precision)
    with tempfile.TemporaryDirectory() as run_dir:
        ws = Workspace(cfg, run_dir)
        assert not ws.preference
        ws.train()
        # the last metrics row times the steps since the eval at seed_steps, evaluation excluded
        return ws.logger.eval_rows[-1]["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=3000, help="timed env steps (one update each)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_sac.md")
    args = parser.parse_args()
    configure_mujoco_gl()

    import gymnasium as gym

    env = gym.make(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    flops = sac_update_flops(obs_dim, act_dim, 256, 2, 256)
    lines = [f"# SAC throughput: pbrl vs stable-baselines3 on {args.env}", "",
             f"256x256 actor and twin critics, batch 256, 1 update per env step; {args.seed_steps} random steps, "
             f"then {args.updates} timed steps. {platform.processor() or platform.machine()}, torch {torch.__version__}. "
             f"One update = {flops / 1e9:.3f} GFLOP of matmuls.", "",
             "| threads | fp32 matmul GFLOP/s | bf16 matmul GFLOP/s | SB3 steps/s | pbrl fp32 steps/s | ratio | "
             "fp32 % of matmul limit | pbrl bf16 steps/s | ratio | bf16 % of bf16 matmul limit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        peak32, peak16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
        sb3 = bench_sb3(args.env, args.seed_steps, args.updates, threads)
        fp32 = bench_pbrl(args.env, args.seed_steps, args.updates, threads, "fp32")
        bf16 = bench_pbrl(args.env, args.seed_steps, args.updates, threads, "bf16")
        row = (f"| {threads} | {peak32:.0f} | {peak16:.0f} | {sb3:.1f} | {fp32:.1f} | {fp32 / sb3:.2f}x | "
               f"{100 * fp32 * flops / (peak32 * 1e9):.0f} % | {bf16:.1f} | {bf16 / sb3:.2f}x | "
               f"{100 * bf16 * flops / (peak16 * 1e9):.0f} % |")
        lines.append(row)
        print(row, flush=True)
    lines += ["", "Steps/s include acting and environment stepping, so the % of the matmul limit is a lower bound "
              "on the update's own efficiency.", "", f"Command: `python experiments/bench_sac.py --env {args.env} "
              f"--seed-steps {args.seed_steps} --updates {args.updates} --threads {args.threads}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
