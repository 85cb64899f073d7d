"""The README's first command, `make train`, measured: the default config over 3 seeds.

    python experiments/first_run.py              # seeds 0-2 of `pbrl-train` with no overrides, resumable
    python experiments/first_run.py --report-only

The default config (conf/config.yaml: PEBBLE on Pendulum-v1, the scripted oracle, 100 labels in 5
rounds of 20, 9k env steps) must finish within 5 minutes on a 2-core machine (setup excluded) and
still visibly learn: final eval return >= -200 on every seed. The runs go side by side, 1 torch
thread each, into runs/first_run/ as one hydra multirun; the table (final return per seed, wall
time) goes to experiments/results/first_run/. A run's own time alone on the machine is what
`make train` takes; side by side each run is slower, so the wall times here are an upper bound.
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, RUNS, machine, multirun, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    sweep = RUNS / "first_run"
    if not args.report_only:
        multirun(sweep, [f"seed={args.seeds}", "threads=1"])  # the default config: nothing else overridden
    out = RESULTS / "first_run"
    report([sweep], out, "env.id,teacher.name", "The default run (make train), 3 seeds")
    rows = []
    for path in sorted(sweep.glob("*/summary.json")):
        s = json.loads(path.read_text())
        rows.append(f"| {s['seed']} | {s['final_eval_return']:.1f} | {s['wall_time_s'] / 60:.1f} | "
                    f"{s['steps_per_s']:.0f} | {s['labels']} | {s.get('reward_rounds_s', 0):.0f} | "
                    f"{s['precision_used']} |")
    lines = [f"## Per seed ({machine()}, two runs side by side, 1 torch thread each)", "",
             "| seed | final eval return | wall time (min) | env steps/s | labels | reward rounds (s) | precision |",
             "|---|---|---|---|---|---|---|", *rows, "",
             "Command: `python experiments/first_run.py`", ""]
    print("\n".join(lines))
    with open(out / "report.md", "a") as f:
        f.write("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
