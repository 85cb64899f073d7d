"""Where one SAC update's time goes on this CPU, and what each speed lever bought.

    python experiments/profile_sac_update.py            # Hopper-sized SAC, 1 thread, ~3 minutes
    python experiments/profile_sac_update.py --threads 2 --no-compile

Rows, timed in one process on the same fixed batch, interleaved in blocks so that a drifting shared
machine affects every row alike (median block reported):
- ``reference``: the update written the obvious way (pbrl/agents/sac_reference.py: batched bmm
  critics, torch.optim.Adam, one backward per loss);
- ``pbrl``: the agent's update (a multiply-and-sum output layer, in-place activations, torch's fused Adam kernel called directly, one backward for actor and
  temperature), checked equal to the reference by tests/test_sac_update.py;
- ``pbrl, a matmul per critic member``: the same with the critics run as one matmul per member
  (the layout of the reward model's large batches) instead of one ``bmm`` per layer;
- ``pbrl + torch.compile``: the same losses compiled by inductor (compile time reported apart).
Then the operators of the pbrl update by self time (torch.profiler; its per-op overhead inflates
small ops). Writes experiments/results/profile_sac_update.md (``--out``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_table  # noqa: E402

from pbrl.agents.sac import SAC, Batch, SACConfig  # noqa: E402
from pbrl.agents.sac_reference import ReferenceSAC  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class MemberSAC(SAC):
    """pbrl's SAC with its critics run as one matmul per member (the layout of large CPU batches)."""

    def q_values(self, obs, action, target=False, params=None):
        net = self.critic_target if target else self.critic
        n = len(net.weights)
        ws, bs = (params[:n], params[n:]) if params is not None else (net.weights, net.biases)
        return net._forward_members(torch.cat([obs, action], dim=-1), ws, bs).squeeze(-1).float()


def compiled_update(agent: SAC):
    """The agent's update with its two losses compiled by torch.compile (optimiser steps stay eager)."""
    cfg = agent.cfg

    def critic_loss(batch: Batch, alpha: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            next_action, next_log_prob = agent.actor.sample(batch.next_obs)
            next_q = agent.q_values(batch.next_obs, next_action, target=True).min(0).values
            target = batch.reward + cfg.discount * (1.0 - batch.terminated) * (next_q - alpha * next_log_prob)
        return 0.5 * (agent.q_values(batch.obs, batch.action) - target).pow(2).mean(1).sum()

    def actor_and_alpha_loss(obs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        action, log_prob = agent.actor.sample(obs)
        q = agent.q_values(obs, action, params=agent.critic.detached_params()).min(0).values
        return (alpha * log_prob - q).mean() - (agent.log_alpha * (log_prob.detach() + agent.target_entropy)).mean()

    critic_loss = torch.compile(critic_loss, dynamic=False)
    actor_and_alpha_loss = torch.compile(actor_and_alpha_loss, dynamic=False)

    def update(batch: Batch) -> None:
        alpha = agent.alpha
        loss = critic_loss(batch, alpha)
        agent.critic_opt.zero_grad()
        loss.backward()
        agent.critic_opt.step()
        loss = actor_and_alpha_loss(batch.obs, alpha)
        agent.actor_opt.zero_grad()
        agent.alpha_opt.zero_grad()
        loss.backward()
        agent.actor_opt.step()
        agent.alpha_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(agent.critic_target.parameters()), list(agent.critic.parameters()), cfg.tau)

    return update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--obs-dim", type=int, default=11, help="Hopper-v5's")
    parser.add_argument("--action-dim", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=20, help="interleaved timing blocks per row")
    parser.add_argument("--block", type=int, default=20, help="updates per block")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row (~1 minute to compile)")
    parser.add_argument("--out", type=Path, default=RESULTS / "profile_sac_update.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = 256
    batch = Batch(torch.randn(size, args.obs_dim), torch.rand(size, args.action_dim) * 2 - 1, torch.randn(size),
                  torch.randn(size, args.obs_dim), torch.zeros(size))
    base = SAC(args.obs_dim, args.action_dim, SACConfig())
    per_member = copy.deepcopy(base)
    per_member.__class__ = MemberSAC
    rows = {"reference": ReferenceSAC(copy.deepcopy(base)).update, "pbrl": copy.deepcopy(base).update,
            "pbrl, a matmul per critic member": per_member.update}
    compile_s = None
    if not args.no_compile:
        started = time.perf_counter()
        rows["pbrl + torch.compile"] = compiled_update(copy.deepcopy(base))
        for _ in range(3):
            rows["pbrl + torch.compile"](batch)
        compile_s = time.perf_counter() - started
    for update in rows.values():
        for _ in range(20):
            update(batch)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.blocks):
        for name, update in rows.items():
            start = time.perf_counter()
            for _ in range(args.block):
                update(batch)
            times[name].append((time.perf_counter() - start) / args.block * 1e3)

    ref = statistics.median(times["reference"])
    lines = [f"# One SAC update: where the time goes ({args.threads} thread(s))", "",
             f"Machine: {machine()}; torch {torch.__version__}. SAC 256x256, twin critics, batch 256, "
             f"obs {args.obs_dim}, action {args.action_dim} (Hopper-v5). Median of {args.blocks} interleaved "
             f"blocks of {args.block} updates.", "",
             "| update | ms | × reference speed | blocks (min–max ms) |", "|---|---|---|---|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {med:.2f} | {ref / med:.2f}x | {min(ts):.1f}–{max(ts):.1f} |")
    if compile_s is not None:
        lines += ["", f"torch.compile: {compile_s:.0f} s to compile (inductor, CPU) before the first update."]

    from torch.profiler import ProfilerActivity, profile

    agent = copy.deepcopy(base)
    for _ in range(20):
        agent.update(batch)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(50):
            agent.update(batch)
    table = prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=15,
                                                               max_name_column_width=28, max_shapes_column_width=48)
    lines += ["", "Operators of the pbrl update by self CPU time (50 updates, torch.profiler):", "", "```",
              table.strip(), "```", "", f"Command: `python experiments/profile_sac_update.py --threads {args.threads}"
              f"{' --no-compile' if args.no_compile else ''}`"]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
