"""The README's first command, `make train`, measured: the default config over 3 seeds.

    python experiments/first_run.py              # seeds 0-2 of `pbrl-train` with no overrides, resumable
    python experiments/first_run.py --report-only

The default config (conf/config.yaml: PEBBLE on Pendulum-v1, the scripted oracle, 100 labels in 5
rounds of 20, 9k env steps) must finish within 5 minutes on a 2-core machine (setup excluded) and
still visibly learn: final eval return >= -200 on every seed. The runs go side by side, 1 torch
thread each, into runs/first_run/ as one hydra multirun; pbrl-report's tables (final return per
seed, wall time) go to experiments/results/first_run/. A run's own time alone on the machine is what
`make train` takes; side by side each run is slower, so the wall times here are an upper bound.
"""

from __future__ import annotations

import argparse

from common import RESULTS, RUNS, machine, multirun, report, restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/
    sweep = RUNS / "first_run"
    if not args.report_only:
        multirun(sweep, [f"seed={args.seeds}", "threads=1"])  # the default config: nothing else overridden
    # per run in report.md's Runs table: seed, status, final eval return, labels, steps/s, wall time
    report([sweep], RESULTS / "first_run", "env.id,teacher.name,precision_used",
           f"The default run (make train), 3 seeds; two side by side, 1 torch thread each ({machine()})")


if __name__ == "__main__":
    main()
