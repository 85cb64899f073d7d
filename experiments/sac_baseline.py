"""SAC on the true reward: the baseline every preference-learning result is compared with.

    python experiments/sac_baseline.py                       # everything below, resumable
    python experiments/sac_baseline.py --only pendulum       # one group
    python experiments/sac_baseline.py --report-only         # tables from what has finished

Groups (each one hydra multirun, 2 runs side by side with 1 torch thread each):
- pendulum: Pendulum-v1, 15k steps, seeds 0-2. Bar: mean eval return >= -200 on 3 seeds.
- mujoco:   Hopper-v5 and HalfCheetah-v5, 300k steps. Bars: Hopper >= 2500, HalfCheetah >= 4000 on
            at least one seed.
Precision is the default ``auto`` (bf16 only where the hardware runs it natively); runs are grouped
by the precision each one used (``precision_used``). ``--precisions fp32,bf16`` compares both.
Results (markdown tables, eval-return-vs-steps tables and plots) go to experiments/results/sac_baseline/.
"""

from __future__ import annotations

import argparse

from common import RESULTS, RUNS, multirun, report, restore

GROUPS = {
    "pendulum": (["experiment=sac_pendulum", "seed=0,1,2"], "env.id,precision_used"),
    "mujoco": (["experiment=sac_hopper,sac_halfcheetah", "seed=0"], "env.id,precision_used"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(GROUPS), help="run one group only")
    parser.add_argument("--seeds", help="override the seed list of the chosen groups, e.g. 0,1,2")
    parser.add_argument("--precisions", help="override the precision list of the chosen groups, e.g. bf16")
    parser.add_argument("--report-only", action="store_true", help="only aggregate finished runs")
    args = parser.parse_args()
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/
    groups = [args.only] if args.only else list(GROUPS)
    for name in groups:
        overrides, by = GROUPS[name]
        for key, value in (("seed", args.seeds), ("precision", args.precisions)):
            if value:
                overrides = [o for o in overrides if not o.startswith(f"{key}=")] + [f"{key}={value}"]
        sweep = RUNS / "sac_baseline" / name
        if not args.report_only:
            multirun(sweep, overrides)
        report([sweep], RESULTS / "sac_baseline" / name, by, f"SAC on the true reward: {name}")


if __name__ == "__main__":
    main()
