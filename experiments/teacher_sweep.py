"""A real sweep through hydra's submitit launcher on this machine: teachers x selection rules x seeds.

    python experiments/teacher_sweep.py                  # 5 seeds; resumable: rerun to finish
    python experiments/teacher_sweep.py --report-only

PEBBLE on Walker2d-v5 at a budget sized for a 2-core machine (experiment=teacher_sweep_walker2d):
20k env steps, 100 labels in 5 rounds of 20 (the first after 1k seed and 4k state-entropy steps,
then every 3k steps), evaluated every 5k steps on 5 episodes. Cells: teacher oracle / mistake (10 % of labels
flipped) x query.selection uniform / disagreement x seeds 0-4.

The runs go through ``hydra/launcher=submitit_local``: the same submission code as
``hydra/launcher=slurm``, with each run in its own submitit job that saves a snapshot and requeues
on a time-limit signal. The local executor starts every job of a multirun at once, so this script
submits one multirun per (seed, teacher), the two selection rules side by side (one torch thread
each), into one sweep folder: ``runs/teacher_sweep``. On a cluster the whole grid is one command::

    pbrl-train -m hydra/launcher=slurm experiment=teacher_sweep_walker2d teacher=oracle,mistake \\
        query.selection=uniform,disagreement seed=0,1,2,3,4

The report (``pbrl-report``) goes to experiments/results/teacher_sweep/, with the probability that
disagreement selection beats uniform selection, per teacher and pooled.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from common import RESULTS, ROOT, RUNS, _rel, report, restore

SWEEP = RUNS / "teacher_sweep"
TEACHERS = ("oracle", "mistake")
RULES = ("uniform", "disagreement")
PRESET = "experiment=teacher_sweep_walker2d"  # the budget: conf/experiment/teacher_sweep_walker2d.yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/
    if not args.report_only:
        for seed in args.seeds.split(","):
            for teacher in TEACHERS:
                cmd = [sys.executable, "-m", "pbrl.train", "-m", "hydra/launcher=submitit_local", PRESET,
                       f"teacher={teacher}", f"query.selection={','.join(RULES)}", f"seed={seed}",
                       f"hydra.sweep.dir={_rel(SWEEP)}", "progress=false"]
                print("+", " ".join(cmd[1:]), flush=True)
                subprocess.run(cmd, cwd=ROOT)  # a failed cell is reported as failed; the others go on
    mistake = {"oracle": 0.0, "mistake": 0.1}  # the two presets differ only in teacher.mistake
    compare = []
    for teacher in TEACHERS:
        cell = f"teacher.mistake={mistake[teacher]},query.selection="
        compare += ["--compare", cell + "disagreement", cell + "uniform"]
    report([SWEEP], RESULTS / "teacher_sweep", "teacher.mistake,query.selection",
           "PEBBLE on Walker2d-v5, 20k steps, 100 labels: teacher x selection rule (submitit_local)",
           options=[*compare, "--compare", "query.selection=disagreement", "query.selection=uniform"])


if __name__ == "__main__":
    main()
