"""Diagnostic: the PEBBLE pipeline with a perfect reward model, to split PEBBLE's gap to SAC.

    python experiments/probe_perfect_reward.py --seed 0          # HalfCheetah-v5, 200k steps
    python experiments/probe_perfect_reward.py --seed 1 --pretrain-steps 0 --transform tanh:2.5 --steps 30000

Runs experiment=pebble_halfcheetah (1000 seed steps, the preset's or ``--pretrain-steps``
state-entropy steps, first round, critic reset, SAC) with every learned reward replaced by the
true one from the teacher's ledger. If this matches SAC on the true reward, PEBBLE's gap comes
from the learned reward; if not, from the agent side of the pipeline (pretraining, the critic
reset, the schedule). Writes a normal run directory under runs/probe/ (resumes when rerun),
readable by pbrl-report.

``--transform`` hands the agent a function of the true reward instead: ``tanh:C`` gives
tanh(r / C), bounded like PEBBLE's tanh reward model (on HalfCheetah the learned reward with 1000
labels is close to tanh(r / 2.5)); ``scale:C`` gives r * C. With these the probe asks whether the
learned reward's range alone, with its ranking perfect, changes what the agent learns.
"""

from __future__ import annotations

import argparse

import numpy as np

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from common import ROOT, RUNS


def parse_transform(spec: str):
    """``none`` | ``tanh:C`` | ``scale:C`` -> a function of the true reward (numpy in, numpy out)."""
    kind, _, value = spec.partition(":")
    if kind == "none" and not value:
        return lambda r: r
    try:
        c = float(value)
    except ValueError:
        raise SystemExit(f"--transform: got {spec!r}; allowed: none, tanh:C, scale:C with C a number") from None
    if kind == "tanh" and c > 0:
        return lambda r: np.tanh(np.asarray(r) / c)
    if kind == "scale":
        return lambda r: np.asarray(r) * c
    raise SystemExit(f"--transform: got {spec!r}; allowed: none, tanh:C (C > 0), scale:C")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="override pretrain.steps (default: the preset's)")
    parser.add_argument("--transform", default="none", help="none | tanh:C (tanh(r / C)) | scale:C (r * C)")
    parser.add_argument("--steps", type=int, default=None, help="override steps (default: the preset's)")
    args = parser.parse_args()
    transform = parse_transform(args.transform)
    extra = [] if args.pretrain_steps is None else [f"pretrain.steps={args.pretrain_steps}"]
    if args.steps is not None:
        extra += [f"steps={args.steps}", "snapshot.keep=true"]
    name = (f"{args.task}_perfect_reward" + ("" if args.pretrain_steps is None else f"_pretrain{args.pretrain_steps}")
            + ("" if args.transform == "none" else "_" + args.transform.replace(":", ""))
            + ("" if args.steps is None else f"_{args.steps // 1000}k"))

    from pbrl.workspace import Workspace

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment=pebble_{args.task}", "threads=1",
                                           "eval.every=10000", f"seed={args.seed}", "progress=false",
                                           "tag=pebble_perfect_reward", *extra])
    ws = Workspace(OmegaConf.to_container(cfg, resolve=True),
                   RUNS / "probe" / name / f"seed={args.seed}")
    ledger, store, buffer = ws.feedback.ledger, ws.store, ws.agent.buffer
    # the step's true reward is recorded in the ledger (at the store's newest row) before the agent stores the step
    ws.feedback.learned.step_reward = lambda obs, action, env_reward: np.array(
        [transform(ledger.reward[(store.pos - 1) % store.capacity])], np.float32)

    def relabel(reward, batch_size, device) -> None:  # one env: the ledger mirrors SAC's buffer row for row
        buffer.reward[:buffer.size] = transform(ledger.reward[:buffer.size])

    buffer.relabel = relabel  # SAC's reward_changed still resets the critic after the first round
    (ws.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    ws.train()


if __name__ == "__main__":
    main()
