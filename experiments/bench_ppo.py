"""Throughput of PPO: pbrl beside stable-baselines3 (PyTorch) with the same hyperparameters.

    python experiments/bench_ppo.py                         # Hopper-v5, SB3's defaults, 1 and 2 threads
    python experiments/bench_ppo.py --preset hopper         # rl-zoo3's tuned Hopper PPO (experiment=ppo_hopper)
    python experiments/bench_ppo.py --n-envs 4              # 4 envs stepped together (SB3: DummyVecEnv; pbrl: sync)
    python experiments/bench_ppo.py --steps 4096 --repeats 1 --threads 1 --out /tmp/bench_ppo_smoke.md

What is timed is the whole training loop, rollouts and updates together: env-steps/s over
``--steps`` env steps (default 16384, at least 8 rollouts), from the end of the first rollout and
its update (timed apart as "warm-up": first allocations, first update) to the end. Both sides run
the same settings (``--preset``):

- ``sb3`` (default): SB3's PPO defaults, which conf/agent/ppo.yaml copies: 64x64 tanh policy and
  value MLPs (separate), orthogonal init, n_steps 2048, batch 64, 10 epochs, lr 3e-4, no normalisation.
- ``hopper``: conf/experiment/ppo_hopper.yaml, rl-zoo3's tuned Hopper PPO: 256x256 ReLU nets,
  log-std -2, no orthogonal init, n_steps 512, batch 32, 5 epochs, observations and rewards
  normalised (SB3: VecNormalize with the agent's gamma).

SB3's rows: ``PPO("MlpPolicy", make_vec_env(env, n_envs, DummyVecEnv), ...)`` on the CPU, timed by a
callback at every rollout's start and end. pbrl's rows: its real training loop, the hydra config with
``agent=ppo teacher=none seed_steps=0 precision=fp32`` (the ``hopper`` preset through
``experiment=ppo_hopper``) and the hyperparameters as overrides, asserted equal to SB3's; timed by its
own metrics rows (one evaluation of one episode after every rollout, excluded: ``steps_per_s`` counts
training time since the last row). Every row runs in a fresh process pinned to the first N cores
(N = its thread count; torch threads set to match), rows interleaved and repeated ``--repeats``
times (median kept), because a shared 2-core VM drifts by ±20 % over minutes. "% in updates" is the
share of the steady-state time spent in the PPO updates (the rest: acting, env steps, storing).
Needs the ``bench`` extra (stable-baselines3). Writes experiments/results/bench_ppo.md (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parent))
from bench_sac import machine_line, matmul_gflops, pin  # noqa: E402
from common import compose, write_table  # noqa: E402

IMPLS = ("sb3", "pbrl")

# pbrl's agent.* names; every value is what SB3's PPO gets too (run_sb3 maps the names)
SB3_DEFAULTS = {
    "n_steps": 2048, "batch_size": 64, "n_epochs": 10, "lr": 3e-4, "anneal_lr": False, "gamma": 0.99,
    "gae_lambda": 0.95, "clip_range": 0.2, "anneal_clip_range": False, "clip_range_vf": None,
    "normalize_advantage": True, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "target_kl": None,
    "hidden_dim": 64, "depth": 2, "activation": "tanh", "log_std_init": 0.0, "ortho_init": True,
    "normalize_obs": False, "normalize_reward": False, "clip_obs": 10.0, "clip_reward": 10.0,
}
PRESETS = {
    "sb3": ("agent=ppo", SB3_DEFAULTS),
    # conf/experiment/ppo_hopper.yaml (rl-baselines3-zoo hyperparams/ppo.yml, Hopper-v3)
    "hopper": ("experiment=ppo_hopper", {
        **SB3_DEFAULTS, "n_steps": 512, "batch_size": 32, "n_epochs": 5, "lr": 9.80828e-05, "gamma": 0.999,
        "gae_lambda": 0.99, "clip_range": 0.2, "ent_coef": 0.00229519, "vf_coef": 0.835671, "max_grad_norm": 0.7,
        "hidden_dim": 256, "depth": 2, "activation": "relu", "log_std_init": -2.0, "ortho_init": False,
        "normalize_obs": True, "normalize_reward": True}),
}


def describe(settings: dict) -> str:
    s = settings
    norm = [name for name, key in (("obs", "normalize_obs"), ("reward", "normalize_reward")) if s[key]]
    return (f"{'x'.join([str(s['hidden_dim'])] * s['depth'])} {s['activation']} policy and value MLPs, log-std init "
            f"{s['log_std_init']:g}, {'orthogonal' if s['ortho_init'] else 'default'} init, n_steps {s['n_steps']}, "
            f"batch {s['batch_size']}, {s['n_epochs']} epochs, lr {s['lr']:g}, gamma {s['gamma']:g}, GAE lambda "
            f"{s['gae_lambda']:g}, clip {s['clip_range']:g}, ent {s['ent_coef']:g}, vf {s['vf_coef']:g}, grad norm "
            f"{s['max_grad_norm']:g}, normalised: {' and '.join(norm) if norm else 'nothing'}")


def run_sb3(env_id: str, preset: str, n_envs: int, steps: int) -> dict:
    """SB3's PPO: the clock reads at every rollout's start and end; steady state from the second rollout on."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    from torch import nn

    s = PRESETS[preset][1]
    starts: list[float] = []
    ends: list[float] = []

    class Clock(BaseCallback):
        def _on_rollout_start(self) -> None:
            starts.append(time.perf_counter())

        def _on_rollout_end(self) -> None:
            ends.append(time.perf_counter())

        def _on_step(self) -> bool:
            return True

    env = make_vec_env(env_id, n_envs=n_envs, seed=0, vec_env_cls=DummyVecEnv)  # gymnasium.make(env_id) each
    if s["normalize_obs"] or s["normalize_reward"]:
        env = VecNormalize(env, norm_obs=s["normalize_obs"], norm_reward=s["normalize_reward"],
                           clip_obs=s["clip_obs"], clip_reward=s["clip_reward"], gamma=s["gamma"])
    policy_kwargs = dict(net_arch=dict(pi=[s["hidden_dim"]] * s["depth"], vf=[s["hidden_dim"]] * s["depth"]),
                         activation_fn={"tanh": nn.Tanh, "relu": nn.ReLU}[s["activation"]],
                         log_std_init=s["log_std_init"], ortho_init=s["ortho_init"])
    model = PPO("MlpPolicy", env, learning_rate=s["lr"], n_steps=s["n_steps"], batch_size=s["batch_size"],
                n_epochs=s["n_epochs"], gamma=s["gamma"], gae_lambda=s["gae_lambda"], clip_range=s["clip_range"],
                clip_range_vf=s["clip_range_vf"], normalize_advantage=s["normalize_advantage"],
                ent_coef=s["ent_coef"], vf_coef=s["vf_coef"], max_grad_norm=s["max_grad_norm"],
                target_kl=s["target_kl"], policy_kwargs=policy_kwargs, device="cpu", seed=0)
    model.learn(total_timesteps=steps, callback=Clock())
    end = time.perf_counter()
    env.close()
    rollout = n_envs * s["n_steps"]
    assert model.num_timesteps == steps and len(starts) == len(ends) == steps // rollout, (model.num_timesteps,
                                                                                            len(starts))
    updates = [b - a for a, b in zip(ends, starts[1:] + [end])]  # train() (and SB3's log dump) after each rollout
    return {"warmup_s": starts[1] - starts[0], "steps_per_s": (steps - rollout) / (end - starts[1]),
            "update_share": sum(updates[1:]) / (end - starts[1])}


def pbrl_config(env_id: str, preset: str, n_envs: int, steps: int, threads: int) -> dict:
    """The composed config the pbrl rows time: PPO on the env reward with exactly SB3's settings (asserted).

    The default config is a small PEBBLE run with SAC; ``agent=ppo teacher=none`` and the
    assertions keep these rows PPO and nothing else. An evaluation (one episode, excluded from the
    timing) after every rollout splits the timing per rollout.
    """
    group, settings = PRESETS[preset]
    rollout = n_envs * settings["n_steps"]
    hyper = [f"agent.{k}={json.dumps(v)}" for k, v in settings.items()]  # null, true, 0.0003, "tanh"
    cfg, _ = compose([
        group, "teacher=none", f"env.id={env_id}", f"steps={steps}", "seed_steps=0", "seed=0",
        f"threads={threads}", "precision=fp32", "device=cpu", "progress=false", "logger.tensorboard=false",
        "snapshot.every=0", "eval.video=none", "eval.episodes=1", f"eval.every={rollout}",
        f"agent.n_envs={n_envs}", "agent.vector_env=sync", *hyper])
    agent = cfg["agent"]
    assert cfg["teacher"]["name"] == "none", "the PPO benchmark must time PPO on the env reward, not PEBBLE"
    assert (agent["name"], agent["n_envs"], agent["vector_env"], cfg["seed_steps"]) == ("ppo", n_envs, "sync", 0), cfg
    differ = {k: (agent.get(k), v) for k, v in settings.items() if agent.get(k) != v}
    assert not differ, f"pbrl's config differs from SB3's settings (pbrl, SB3): {differ}"
    return cfg


def preset_drift(env_id: str, preset: str) -> dict:
    """Settings where the conf file behind ``preset`` (no overrides) differs from this script's: (conf, script)."""
    group, settings = PRESETS[preset]
    agent = compose([group, "teacher=none"])[0]["agent"]
    return {k: (agent.get(k), v) for k, v in settings.items() if agent.get(k) != v}


def run_pbrl(env_id: str, preset: str, n_envs: int, steps: int, threads: int) -> dict:
    """pbrl's training loop: per-rollout steps/s from its own metrics rows (evaluation excluded)."""
    from pbrl.agents.ppo import PPO
    from pbrl.workspace import Workspace

    settings = PRESETS[preset][1]
    rollout = n_envs * settings["n_steps"]
    cfg = pbrl_config(env_id, preset, n_envs, steps, threads)
    updates: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        ws = Workspace(cfg, run_dir)
        agent = ws.agent
        assert isinstance(agent, PPO) and not ws.feedback.preference, (type(agent), ws.feedback.preference)
        assert (ws.precision, ws.threads, ws.n_envs, str(ws.device)) == ("fp32", threads, n_envs, "cpu"), (
            ws.precision, ws.threads, ws.n_envs, ws.device)
        differ = {k: (getattr(agent.cfg, k), v) for k, v in settings.items() if getattr(agent.cfg, k) != v}
        assert not differ, f"pbrl's PPO runs other settings than SB3 (pbrl, SB3): {differ}"
        update = agent.update

        def timed_update(reward) -> None:  # the PPO update proper, for the % in updates
            start = time.perf_counter()
            update(reward)
            updates.append(time.perf_counter() - start)

        agent.update = timed_update
        ws.train()
        rows = ws.logger.eval_rows
    assert [r["env_step"] for r in rows] == list(range(rollout, steps + 1, rollout)), [r["env_step"] for r in rows]
    assert len(updates) == len(rows), (len(updates), len(rows))
    seconds = [rollout / r["steps_per_s"] for r in rows]  # training time of each rollout and its update
    return {"warmup_s": seconds[0], "steps_per_s": rollout * (len(seconds) - 1) / sum(seconds[1:]),
            "update_share": sum(updates[1:]) / sum(seconds[1:])}


def row_main(args) -> None:
    """One row in this (fresh, pinned) process; prints its result as JSON on the last line."""
    pin(args.row_threads)
    import torch

    torch.set_num_threads(args.row_threads)
    from pbrl.envs.render import configure_mujoco_gl

    configure_mujoco_gl()
    if args.row == "pbrl":
        out = run_pbrl(args.env, args.preset, args.n_envs, args.steps, args.row_threads)
    else:
        out = run_sb3(args.env, args.preset, args.n_envs, args.steps)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="sb3",
                        help="sb3: SB3's PPO defaults; hopper: conf/experiment/ppo_hopper.yaml (rl-zoo3's tuned)")
    parser.add_argument("--n-envs", type=int, default=1, help="envs stepped together (SB3 DummyVecEnv, pbrl sync)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per row, a multiple of the rollout n_envs * n_steps "
                             "(default: 16384 or 8 rollouts, whichever is more)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every row (median reported)")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_ppo.md")
    parser.add_argument("--row", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--row-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = PRESETS[args.preset][1]
    rollout = args.n_envs * settings["n_steps"]
    if args.steps is None:
        args.steps = max(16384, 8 * rollout)
    if args.steps % rollout or args.steps < 2 * rollout:
        parser.error(f"--steps must be a multiple of the rollout n_envs * n_steps = {rollout}, at least 2 of them "
                     "(the first is the warm-up)")
    if args.row:
        return row_main(args)

    drift = preset_drift(args.env, args.preset)
    if drift:
        raise SystemExit(f"bench_ppo: the conf behind --preset {args.preset} ({PRESETS[args.preset][0]}) no longer "
                         f"matches this script's settings (conf, script): {drift}; update PRESETS")
    impls = args.impls.split(",")
    results: dict[tuple, list[dict]] = {}
    thread_counts = [int(t) for t in args.threads.split(",")]
    for repeat in range(args.repeats):
        for threads in thread_counts:
            for impl in impls:
                cmd = [sys.executable, __file__, "--row", impl, "--row-threads", str(threads), "--env", args.env,
                       "--preset", args.preset, "--n-envs", str(args.n_envs), "--steps", str(args.steps)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"bench_ppo: the {impl} row failed:\n{done.stderr[-3000:]}")
                out = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((threads, impl), []).append(out)
                print(f"repeat {repeat + 1}/{args.repeats}, {threads} thread(s), {impl}: "
                      f"{out['steps_per_s']:.1f} steps/s, {100 * out['update_share']:.0f} % in updates "
                      f"(warm-up {out['warmup_s']:.1f} s)", flush=True)

    command = (f"python experiments/bench_ppo.py --env {args.env} --preset {args.preset} --n-envs {args.n_envs} "
               f"--steps {args.steps} --threads {args.threads} --repeats {args.repeats}"
               + ("" if args.impls == ",".join(IMPLS) else f" --impls {args.impls}"))
    lines = [f"# PPO throughput on {args.env}: pbrl and stable-baselines3 (preset {args.preset}, "
             f"{args.n_envs} env{'s' if args.n_envs > 1 else ''})", "",
             f"Machine: {machine_line()}.", "",
             f"Both sides: {describe(settings)}; {args.n_envs} env(s) (SB3 DummyVecEnv, pbrl vector_env=sync), fp32, "
             f"CPU. {args.steps} env steps per row = {args.steps // rollout} rollouts of {rollout}, the first rollout "
             f"and its update timed apart as warm-up; steps/s is the rest, rollouts and updates together (pbrl's "
             f"per-rollout evaluations excluded). Median of {args.repeats} runs per row, each in a fresh process "
             "pinned to its cores.", "",
             "| threads | 256³ matmul GFLOP/s | impl | steps/s | × SB3 | % in updates | warm-up s |",
             "|---|---|---|---|---|---|---|"]
    for threads in thread_counts:
        peak = matmul_gflops(threads)
        med = {key[1]: statistics.median(r["steps_per_s"] for r in runs)
               for key, runs in results.items() if key[0] == threads}
        for impl, rate in med.items():
            runs = results[(threads, impl)]
            share = statistics.median(r["update_share"] for r in runs)
            warm = statistics.median(r["warmup_s"] for r in runs)
            vs = f"{rate / med['sb3']:.2f}x" if "sb3" in med else "—"
            lines.append(f"| {threads} | {peak:.0f} | {impl} | {rate:.1f} | {vs} | {100 * share:.0f} % | {warm:.1f} |")
    lines += ["", "Runs of one row (steps/s): "
              + "; ".join(f"{t}t {i}: " + " / ".join(f"{r['steps_per_s']:.1f}" for r in runs)
                          for (t, i), runs in results.items()) + ".", "",
              f"Command: `{command}`"]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
