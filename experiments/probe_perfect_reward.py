"""Diagnostic: the PEBBLE pipeline with a perfect reward model, to split PEBBLE's gap to SAC.

    python experiments/probe_perfect_reward.py --seed 0          # HalfCheetah-v5, 200k steps

Runs experiment=pebble_halfcheetah (1000 seed steps, the preset's or ``--pretrain-steps``
state-entropy steps, first round, critic reset, SAC) with every learned reward replaced by the
true one from the teacher's ledger. If this matches SAC on the true reward, PEBBLE's gap comes
from the learned reward; if not, from the agent side of the pipeline (pretraining, the critic
reset, the schedule). Writes a normal run directory under runs/probe/ (resumes when rerun),
readable by pbrl-report.
"""

from __future__ import annotations

import argparse
import time

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from common import ROOT, RUNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="override pretrain.steps (default: the preset's)")
    args = parser.parse_args()
    extra = [] if args.pretrain_steps is None else [f"pretrain.steps={args.pretrain_steps}"]
    name = f"{args.task}_perfect_reward" + ("" if args.pretrain_steps is None else f"_pretrain{args.pretrain_steps}")

    from pbrl.workspace import Workspace

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment=pebble_{args.task}", "precision=bf16", "threads=1",
                                           "eval.every=10000", f"seed={args.seed}", "progress=false",
                                           "tag=pebble_perfect_reward", *extra])
    ws = Workspace(OmegaConf.to_container(cfg, resolve=True),
                   RUNS / "probe" / name / f"seed={args.seed}")
    learner, ledger = ws.learner, ws.ledger
    # the step's true reward was recorded by the ledger just before the buffer stores the step
    learner.step_reward = lambda obs, action: float(ledger.reward[(ledger.pos - 1) % ledger.capacity])

    def relabel(buffer) -> float:  # the ledger mirrors the buffer slot for slot
        started = time.perf_counter()
        buffer.reward[:buffer.size] = ledger.reward[:buffer.size]
        return time.perf_counter() - started

    learner.relabel = relabel
    (ws.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    ws.train()


if __name__ == "__main__":
    main()
