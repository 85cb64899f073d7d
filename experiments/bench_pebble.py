"""What preference learning costs: relabelling, the k-NN bonus, and the whole loop next to plain SAC.

    python experiments/bench_pebble.py                 # every part, 1 torch thread
    python experiments/bench_pebble.py --part rime
    python experiments/bench_pebble.py --part relabel --threads 2
    python experiments/bench_pebble.py --part loop --steps 20000

Parts (results appended to experiments/results/bench_pebble.md):
- ``relabel``: the reward ensemble (3 members, 3 × 256 hidden, HalfCheetah's 17 + 6 inputs) over a
  1M-transition buffer, next to this machine's measured 256³ fp32 matmul rate (the "limit").
- ``fit``: one epoch of reward-model training, in the CPU's layout and its alternatives.
- ``knn``: one state-entropy bonus (batch 256 against every stored state, k = 5) for buffer sizes
  10k to 1M: the cost per pretraining update as the buffer grows.
- ``rime``: one step of RIME's warm start (``reward_model.robust=rime``: 5 reward-model updates on
  the normalised k-NN bonus of 256 stored steps, after every pretraining step) for Walker2d-sized
  inputs (17 + 6) as the pretraining buffer fills, split into its k-NN bonus and its updates, and
  what it adds over a 9000-step pretraining (``experiment=pebble_walker2d``).
- ``loop``: HalfCheetah-v5, PEBBLE (oracle, 1000 labels) and plain SAC with the same agent, run
  side by side by this script (the same machine load for both); env-steps/s of each and the ratio.
  The PEBBLE schedule is compressed to fit ``--steps`` (pretraining 4.5 % of the run, 10 rounds
  in the first half, as in experiment=pebble_halfcheetah at 200k), so every round's reward
  training and relabel is in the measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results" / "bench_pebble.md"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
from common import machine, preset_agent  # noqa: E402


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 256, reps: int = 400) -> float:
    """GFLOP/s of an n³ matmul at the current thread count (the machine's practical limit)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(20):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def bench_relabel(transitions: int = 1_000_000) -> list[str]:
    from pbrl.buffers.replay import ReplayBuffer
    from pbrl.reward.model import RewardModel, RewardModelConfig

    obs_dim, action_dim = 17, 6
    buf = ReplayBuffer(transitions, obs_dim, action_dim)
    buf.obs[:] = torch.randn(transitions, obs_dim).numpy()
    buf.action[:] = torch.rand(transitions, action_dim).numpy() * 2 - 1
    buf.size = transitions
    cfg = RewardModelConfig()
    per_row = 2 * cfg.ensemble_size * ((obs_dim + action_dim) * cfg.hidden_dim
                                       + (cfg.depth - 1) * cfg.hidden_dim**2 + cfg.hidden_dim)
    tflop = per_row * transitions / 1e12
    lines = [f"relabel {transitions:,} transitions, ensemble {cfg.ensemble_size} x {cfg.depth} x {cfg.hidden_dim}: "
             f"{tflop:.2f} TFLOP", "", "| precision | chunk | seconds | TFLOP/s | matmul limit (fp32 256³) | fraction |",
             "|---|---|---|---|---|---|"]
    limit = matmul_gflops()
    from pbrl.common.precision import native_bf16

    # bf16 only where the CPU runs it natively: emulated, a round would take ~50x as long
    for precision in ("fp32", "bf16") if native_bf16(torch.device("cpu"))[0] else ("fp32",):
        model = RewardModel(obs_dim, action_dim, cfg, precision=precision)
        for chunk in (1024, 4096, 65536):
            buf.relabel(model.reward, batch_size=chunk)  # warm-up
            start = time.perf_counter()
            buf.relabel(model.reward, batch_size=chunk)
            seconds = time.perf_counter() - start
            rate = tflop / seconds
            lines.append(f"| {precision} | {chunk} | {seconds:.2f} | {rate:.3f} | {limit / 1000:.3f} | "
                         f"{rate * 1000 / limit:.0%} |")
    return lines


def bench_fit(labels_n: int = 256, repeats: int = 4) -> list[str]:
    """One epoch of reward-model training (HalfCheetah sizes, 2 x 50-step segments), four ways, interleaved.

    The CPU's choices in pbrl/reward/model.py and pbrl/agents/nets.py against their alternatives:
    ~1024-row passes per minibatch vs the whole 12800-row minibatch in one pass, and one matmul per
    ensemble member vs one bmm per layer.
    """
    import statistics

    import numpy as np

    import pbrl.reward.model as reward_model
    from pbrl.agents.nets import EnsembleMLP
    from pbrl.reward.labels import LabelSet

    obs_dim, action_dim, length = 17, 6, 50
    rng = np.random.default_rng(0)
    labels = LabelSet(2, length, obs_dim, action_dim)
    labels.add(rng.standard_normal((labels_n, 2, length, obs_dim)), rng.uniform(-1, 1, (labels_n, 2, length, action_dim)),
               np.tile([0, 1], (labels_n, 1)), np.zeros(labels_n, bool))
    model = reward_model.RewardModel(obs_dim, action_dim, reward_model.RewardModelConfig(epochs=1, stop_accuracy=2.0))
    generator = torch.Generator().manual_seed(0)
    members = EnsembleMLP.forward

    def batched(self, x, params=None):
        n = len(self.weights)
        return self._forward_batched(x, *((params[:n], params[n:]) if params is not None else (self.weights, self.biases)))

    ways = {"1024-row passes, a matmul per member (pbrl)": (1024, members),
            "1024-row passes, one bmm per layer": (1024, batched),
            "one 12800-row pass, a matmul per member": (10**9, members),
            "one 12800-row pass, one bmm per layer": (10**9, batched)}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    saved = reward_model.CPU_ROWS_PER_PASS
    try:
        for _ in range(repeats):
            for name, (rows, forward) in ways.items():
                reward_model.CPU_ROWS_PER_PASS, EnsembleMLP.forward = rows, forward
                stats = model.fit(labels, generator)
                rates[name].append(stats["reward_fit_gflop"] / stats["reward_fit_s"])
    finally:
        reward_model.CPU_ROWS_PER_PASS, EnsembleMLP.forward = saved, members
    limit = matmul_gflops()
    lines = [f"Reward-model training, one epoch over {labels_n} labels (2 x 50 steps, 17 + 6 inputs, 3 x 3 x 256), "
             f"median of {repeats} interleaved runs; the 256³ matmul rate: {limit:.0f} GFLOP/s", "",
             "| layout | GFLOP/s | % of the 256³ rate |", "|---|---|---|"]
    for name, values in rates.items():
        rate = statistics.median(values)
        lines.append(f"| {name} | {rate:.1f} | {rate / limit:.0%} |")
    return lines


def bench_knn() -> list[str]:
    from pbrl.intrinsic.state_entropy import knn_distance

    lines = ["k-NN state-entropy bonus, batch 256, obs dim 17, k = 5", "",
             "| stored states | ms per bonus (= per pretraining update) |", "|---|---|"]
    for size in (10_000, 100_000, 1_000_000):
        pool = torch.randn(size, 17)
        states = pool[torch.randint(0, size, (256,))]
        knn_distance(states, pool)
        reps = max(3, int(2e6 // size))
        start = time.perf_counter()
        for _ in range(reps):
            knn_distance(states, pool)
        lines.append(f"| {size:,} | {(time.perf_counter() - start) / reps * 1000:.1f} |")
    return lines


def _start(overrides: list[str], threads: int, run_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pbrl.train", *overrides, f"threads={threads}", "progress=false",
           "eval.video=none", "eval.every=0", "eval.episodes=1", "snapshot.every=0",
           "logger.tensorboard=false", f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)


def round_floor_table(rounds_csv: Path, gflops: float) -> list[str]:
    """Each reward-training round against its matmul floor: FLOPs (rows x members x multiply-adds x 6) / rate."""
    import csv

    rows = [r for r in csv.DictReader(open(rounds_csv)) if r.get("reward_fit_gflop")]
    lines = [f"Reward-model rounds against their matmul floor ({gflops:.0f} GFLOP/s, the 256³ fp32 rate measured "
             "alone on 1 thread just before the runs; rows x members x multiply-adds x 6 FLOP):", "",
             "| step | labels | epochs | fit s | floor s | % of floor |", "|---|---|---|---|---|---|"]
    fit = floor = 0.0
    for r in rows:
        s, f = float(r["reward_fit_s"]), float(r["reward_fit_gflop"]) / gflops
        fit, floor = fit + s, floor + f
        lines.append(f"| {r['env_step']} | {r['labels']} | {r['reward_epochs']} | {s:.2f} | {f:.2f} | {f / s:.0%} |")
    lines.append(f"| all | | | {fit:.1f} | {floor:.1f} | **{floor / max(fit, 1e-9):.0%}** |")
    return lines


def bench_loop(steps: int, threads: int, precision: str) -> list[str]:
    """PEBBLE and SAC side by side (same machine load for both), then their training env-steps/s."""
    interact = steps // 20
    gflops = matmul_gflops()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "pebble": _start(["experiment=pebble_halfcheetah", f"steps={steps}", f"precision={precision}",
                              f"pretrain.steps={max(1, int(steps * 0.045))}", f"feedback.num_interact={interact}"],
                             threads, Path(tmp, "pebble")),
            "sac": _start(["experiment=sac_halfcheetah", f"agent={preset_agent('pebble_halfcheetah') or 'sac'}",
                           f"steps={steps}", f"precision={precision}", "seed_steps=1000"], threads, Path(tmp, "sac")),
        }
        for name, proc in runs.items():
            if proc.wait() != 0:
                raise SystemExit(f"bench_pebble: the {name} run failed (status {proc.returncode})")
        agents = [yaml.safe_load(Path(tmp, name, "config.yaml").read_text())["agent"] for name in ("pebble", "sac")]
        assert agents[0] == agents[1], f"bench_pebble times PEBBLE and SAC with one agent; got {agents}"
        pebble, sac = (json.loads(Path(tmp, name, "summary.json").read_text()) for name in ("pebble", "sac"))
        rounds = round_floor_table(Path(tmp, "pebble", "rounds.csv"), gflops)
    ratio = pebble["train_steps_per_s"] / sac["train_steps_per_s"]
    # the same 10 rounds spread over the preset's 200k steps: per-step costs scale, round costs do not
    rounds_s = pebble["reward_rounds_s"] + pebble["relabel_s"]
    per_step_s = (steps / pebble["train_steps_per_s"] - rounds_s) / steps
    ratio_200k = (200_000 / sac["train_steps_per_s"]) / (per_step_s * 200_000 + rounds_s)
    return [f"HalfCheetah-v5, {steps} env steps each, run side by side, precision {pebble.get('precision_used', precision)}, "
            f"{threads} thread(s) each", "",
            "| run | env-steps/s (training) | labels | reward rounds s | relabel s |", "|---|---|---|---|---|",
            f"| SAC (true reward) | {sac['train_steps_per_s']:.1f} | — | — | — |",
            f"| PEBBLE | {pebble['train_steps_per_s']:.1f} | {pebble['labels']} | {pebble['reward_rounds_s']:.1f} | "
            f"{pebble['relabel_s']:.1f} |", "",
            f"PEBBLE / SAC speed with all 10 rounds packed into {steps} steps (worst case): **{ratio:.0%}**; "
            f"the same rounds spread over experiment=pebble_halfcheetah's 200k steps: **{ratio_200k:.0%}** "
            "(per-step time measured here × 200k + the measured round time)", "", *rounds]


def bench_rime(pretrain_steps: int = 9000) -> list[str]:
    from pbrl.intrinsic.state_entropy import knn_distance
    from pbrl.reward.model import RewardModel, RewardModelConfig
    from pbrl.reward.rime import RimeConfig, RimeWarmStart

    cfg = RimeConfig()
    model = RewardModel(17, 6, RewardModelConfig())  # pbrl's reward-model defaults: 3 members, 3 x 256
    warm = RimeWarmStart(cfg, 5, torch.device("cpu"))
    # what the table's header says it times: RIME's defaults, fp32 on the CPU, pbrl's reward-model defaults
    assert (cfg.warm_start_updates, cfg.warm_start_batch) == (5, 256), cfg
    assert model.precision == "fp32" and model.device.type == "cpu"
    assert (model.cfg.ensemble_size, model.cfg.hidden_dim, model.cfg.depth) == (3, 256, 3), model.cfg
    generator = torch.Generator().manual_seed(0)
    lines = [f"RIME warm start: {cfg.warm_start_updates} updates of batch {cfg.warm_start_batch} per pretraining "
             "step, 3 x 256 ensemble, obs 17 + action 6, k = 5", "",
             "| stored steps | ms per pretraining step | of which k-NN bonus (ms) | of which updates (ms) |",
             "|---|---|---|---|"]
    per_step = []
    for size in (1_000, 5_000, 9_000):
        obs, action = torch.randn(size, 17), torch.randn(size, 6)
        rows = torch.randint(0, size, (cfg.warm_start_batch,), generator=generator)
        warm.step(model, obs, action, generator)
        reps = 20
        start = time.perf_counter()
        for _ in range(reps):
            warm.step(model, obs, action, generator)
        step = (time.perf_counter() - start) / reps
        start = time.perf_counter()
        for _ in range(reps * cfg.warm_start_updates):
            knn_distance(obs[rows], obs, 5)
        knn = (time.perf_counter() - start) / reps
        per_step.append(step)
        lines.append(f"| {size:,} | {step * 1000:.1f} | {knn * 1000:.1f} | {(step - knn) * 1000:.1f} |")
    lines += ["", f"Over {pretrain_steps} pretraining steps (the buffer growing from 1k): about "
                  f"{sum(per_step) / len(per_step) * pretrain_steps / 60:.0f} min added to the run."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("relabel", "fit", "knn", "rime", "loop", "all"), default="all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20000, help="env steps of each loop run")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="precision of the loop runs (auto: bf16 only where the hardware runs it natively)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = ["relabel", "fit", "knn", "rime", "loop"] if args.part == "all" else [args.part]
    text = [f"## {time.strftime('%Y-%m-%d')}: {', '.join(parts)}, {args.threads} thread(s), torch {torch.__version__}, "
            f"{machine()}", ""]
    for part in parts:
        lines = {"relabel": bench_relabel, "fit": bench_fit, "knn": bench_knn, "rime": bench_rime,
                 "loop": lambda: bench_loop(args.steps, args.threads, args.precision)}[part]()
        print("\n".join(lines) + "\n", flush=True)
        text += lines + [""]
    with open(OUT, "a") as f:
        f.write("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
