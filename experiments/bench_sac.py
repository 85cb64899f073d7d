"""Throughput of plain SAC: pbrl beside stable-baselines3 (PyTorch) and SBX (its JAX port).

    python experiments/bench_sac.py                         # Hopper-v5, 1 and 2 threads, ~15 minutes
    python experiments/bench_sac.py --updates 1000 --repeats 1 --threads 1

Same task, network sizes (256x256 actor and twin critics), batch (256), one gradient step per env
step, the same number of steps for every row: ``--seed-steps`` random steps (not timed), then
``--updates`` env steps each followed by one update. The first ``--warmup`` of those are timed
apart ("warm-up": JAX's jit compilation, first allocations); "steps/s" is the steady state after
them. Every row runs in a fresh process pinned to the first N cores (N = its thread count; torch
threads and XLA's thread pool set to match), rows interleaved and repeated ``--repeats`` times
(median kept), because a shared 2-core VM drifts by ±20 % over minutes. pbrl's rows run its
hydra config with ``teacher=none agent=sac``, asserted: SAC on the env reward, nothing else.
bf16 rows only where the CPU runs bf16 natively (pbrl.common.precision). Needs the ``bench``
extra (``pip install -e ".[bench]"``: stable-baselines3, sbx-rl, jax). Writes
experiments/results/bench_sac.md (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parent))
from common import machine, write_table  # noqa: E402
IMPLS = ("sb3", "sbx", "pbrl")


def pin(threads: int) -> None:
    """Restrict this process to the first ``threads`` cores; XLA reads its flags at import, so set them first."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    if threads == 1:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


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


def run_baseline(impl: str, env_id: str, seed_steps: int, updates: int, warmup: int) -> dict:
    """SB3's or SBX's SAC: times at the end of seeding, after the warm-up updates, at the end."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    if impl == "sbx":
        from sbx import SAC
        kwargs = {}
    else:
        from stable_baselines3 import SAC
        kwargs = {"device": "cpu"}

    marks: dict[int, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in (seed_steps, seed_steps + warmup):
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model = SAC("MlpPolicy", gym.make(env_id), learning_starts=seed_steps, batch_size=256,
                buffer_size=seed_steps + updates, policy_kwargs=dict(net_arch=[256, 256]), train_freq=1,
                gradient_steps=1, seed=0, **kwargs)
    model.learn(total_timesteps=seed_steps + updates, callback=Clock())
    end = time.perf_counter()
    return {"warmup_s": marks[seed_steps + warmup] - marks[seed_steps],
            "steps_per_s": (updates - warmup) / (end - marks[seed_steps + warmup])}


def pbrl_config(env_id: str, seed_steps: int, updates: int, threads: int, precision: str,
                warmup: int = 250) -> dict:
    """The composed config the pbrl rows time: plain SAC on the env reward, the sizes SB3 runs with (asserted).

    The default config became a small PEBBLE run after this benchmark was first written, and its
    "pbrl" rows then timed feedback rounds too; ``teacher=none`` and the assertions keep it honest.
    Evaluations (one episode, excluded from the timing) every ``warmup`` steps split the timing.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"env.id={env_id}", f"steps={seed_steps + updates}", f"seed_steps={seed_steps}", f"threads={threads}",
            f"precision={precision}", "device=cpu", f"eval.every={warmup}", "eval.episodes=1", "eval.video=none",
            "snapshot.every=0", "logger.tensorboard=false", "progress=false", "teacher=none", "agent=sac"])
    cfg = OmegaConf.to_container(cfg, resolve=True)
    agent = cfg["agent"]
    assert cfg["teacher"]["name"] == "none", "the SAC benchmark must time SAC on the env reward, not PEBBLE"
    assert (agent["name"], agent["hidden_dim"], agent["depth"], agent["num_critics"], agent["batch_size"],
            agent["updates_per_step"]) == ("sac", 256, 2, 2, 256, 1), agent
    return cfg


def run_pbrl(env_id: str, seed_steps: int, updates: int, warmup: int, threads: int, precision: str) -> dict:
    """pbrl's training loop: per-interval steps/s from its own metrics rows (evaluation excluded)."""
    from pbrl.workspace import Workspace

    cfg = pbrl_config(env_id, seed_steps, updates, threads, precision, warmup)
    with tempfile.TemporaryDirectory() as run_dir:
        ws = Workspace(cfg, run_dir)
        assert not ws.feedback.preference and ws.precision == precision, (ws.feedback.preference, ws.precision)
        ws.train()
        rows = [r for r in ws.logger.eval_rows if r["env_step"] > seed_steps]
    seconds = [warmup / r["steps_per_s"] for r in rows]
    return {"warmup_s": seconds[0], "steps_per_s": warmup * (len(seconds) - 1) / sum(seconds[1:])}


def row_main(args) -> None:
    """One row in this (fresh, pinned) process; prints its result as JSON on the last line."""
    pin(args.row_threads)
    import torch

    torch.set_num_threads(args.row_threads)
    from pbrl.envs.render import configure_mujoco_gl

    configure_mujoco_gl()
    if args.row == "pbrl":
        out = run_pbrl(args.env, args.seed_steps, args.updates, args.warmup, args.row_threads, args.row_precision)
    else:
        out = run_baseline(args.row, args.env, args.seed_steps, args.updates, args.warmup)
    print(json.dumps(out))


def machine_line() -> str:
    import torch

    from pbrl.common.precision import native_bf16

    return (f"{machine()}, native bf16: {'yes' if native_bf16(torch.device('cpu'))[0] else 'no'}; "
            f"torch {torch.__version__}")


def matmul_gflops(threads: int, n: int = 256, seconds: float = 1.0) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(50):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            a @ b
        count += 100
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=2000, help="env steps with one update each, per row")
    parser.add_argument("--warmup", type=int, default=250, help="first updates timed apart from the steady state")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every row (median reported)")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_sac.md")
    parser.add_argument("--row", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--row-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--row-precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        return row_main(args)

    import gymnasium as gym
    import torch

    from pbrl.common.precision import native_bf16

    env = gym.make(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    flops = sac_update_flops(obs_dim, act_dim, 256, 2, 256)
    rows = [(impl, "fp32") for impl in args.impls.split(",")]
    if "pbrl" in rows[-1] and native_bf16(torch.device("cpu"))[0]:
        rows.append(("pbrl", "bf16"))
    results: dict[tuple, list[dict]] = {}
    thread_counts = [int(t) for t in args.threads.split(",")]
    for repeat in range(args.repeats):
        for threads in thread_counts:
            for impl, precision in rows:
                cmd = [sys.executable, __file__, "--row", impl, "--row-threads", str(threads), "--row-precision",
                       precision, "--env", args.env, "--seed-steps", str(args.seed_steps), "--updates",
                       str(args.updates), "--warmup", str(args.warmup)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"bench_sac: the {impl} row failed:\n{done.stderr[-3000:]}")
                out = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((threads, impl, precision), []).append(out)
                print(f"repeat {repeat + 1}/{args.repeats}, {threads} thread(s), {impl} {precision}: "
                      f"{out['steps_per_s']:.1f} steps/s (warm-up {out['warmup_s']:.1f} s)", flush=True)

    lines = [f"# SAC throughput on {args.env}: pbrl, stable-baselines3 and SBX", "",
             f"Machine: {machine_line()}.", "",
             f"256x256 actor and twin critics, batch 256, 1 update per env step, fp32 unless marked; "
             f"{args.seed_steps} random steps, then {args.updates} steps with updates, the first {args.warmup} "
             f"timed apart as warm-up. Median of {args.repeats} runs per row, each in a fresh process pinned to "
             f"its cores. One update = {flops / 1e9:.3f} GFLOP of matmuls.", "",
             "| threads | 256³ matmul GFLOP/s | impl | steps/s | × SB3 | × SBX | % of matmul limit | warm-up s |",
             "|---|---|---|---|---|---|---|---|"]
    for threads in thread_counts:
        peak = matmul_gflops(threads)
        med = {key[1:]: statistics.median(r["steps_per_s"] for r in runs)
               for key, runs in results.items() if key[0] == threads}
        for (impl, precision), rate in med.items():
            warm = statistics.median(r["warmup_s"] for r in results[(threads, impl, precision)])
            vs = lambda other: f"{rate / med[(other, 'fp32')]:.2f}x" if (other, "fp32") in med else "—"  # noqa: E731
            lines.append(f"| {threads} | {peak:.0f} | {impl}{'' if precision == 'fp32' else ' ' + precision} | "
                         f"{rate:.1f} | {vs('sb3')} | {vs('sbx')} | {100 * rate * flops / (peak * 1e9):.0f} % | "
                         f"{warm:.1f} |")
    lines += ["", "Steps/s include acting, environment stepping and replay sampling, so the % of the matmul limit "
              "is a lower bound on the update's own efficiency. Runs of one row: "
              + "; ".join(f"{t}t {i} {p}: " + " / ".join(f"{r['steps_per_s']:.1f}" for r in runs)
                          for (t, i, p), runs in results.items()) + ".", "",
              f"Command: `python experiments/bench_sac.py --env {args.env} --seed-steps {args.seed_steps} "
              f"--updates {args.updates} --warmup {args.warmup} --threads {args.threads} --repeats {args.repeats}`"]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
