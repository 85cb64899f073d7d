"""PEBBLE's add-ons, each a switch, side by side on Walker2d-v5 (issue 18).

    python experiments/addons.py                      # both studies, 3 seeds; resumable: rerun it
    python experiments/addons.py --study noise --seeds 0
    python experiments/addons.py --study noise --seeds 0 --arms rime --lanes 1   # one cell, one core
    python experiments/addons.py --report-only

Every cell is experiment=pebble_walker2d at 100k env steps (9k state-entropy steps, then rounds every
10k steps from 10k), one torch thread per run, two runs side by side:

- ``efficiency``: the oracle teacher and 200 labels (10 rounds of 20) x {PEBBLE, +SURF, +RUNE, +QPA}. SURF
  is its pseudo-labels and its crops (60-step segments, the teacher judging the centre 50, crops of
  45-55 steps); QPA here
  is its policy-aligned queries (the newest 10 episodes) and batches (half of each SAC batch from the
  newest 10k transitions while labels are collected) and its temporal crops (20 per query).
- ``noise``: the ``mistake`` teacher with eps = 0.3 and 1000 labels (10 rounds of 100) x {PEBBLE, +RIME},
  beside PEBBLE with the oracle teacher at the same budget. The bar: PEBBLE+RIME >= 80 % of PEBBLE's
  return with the oracle.

Each study's runs go into runs/addons/<study>/ (``tag`` names the arm), seed by seed and two at a time (``--lanes``:
a lane that finishes takes the next run, so no core idles while runs are queued); the report
(pbrl-report --by tag) goes to experiments/results/addons/<study>/: IQM with 95 % stratified-bootstrap
CIs per arm, each arm as a percentage of the reference (``tag=pebble``; ``tag=pebble_oracle`` in the
noise study), and the probability that each switch beats PEBBLE (rliable, with its CI), on the final evaluation and on
each run's mean over its last 3 evaluations (80k-100k, ``--last 3``: less evaluation noise). A second report in
``<study>/reward_correlation/`` does the same for the learned reward's correlation with the true reward at the end
(pbrl's ``reward_correlation``), which tells how well each arm learned the task where the return cannot yet.

Cost, estimated from SAC's 68 env steps/s at 1 thread on the 2-core AMD EPYC (experiments/results/
bench_sac.md) plus PEBBLE's rounds: ~30 min per 100k-step run, so a study of 3 arms x 3 seeds is
~6 h of one core for the efficiency study's 4 arms x 3 seeds (SURF's pseudo-labels cost more),
~4.5 h for the noise study's 3 arms x 3 seeds: half that on the clock with two lanes. Each finished run is
archived at once, so a sitting too short for a study still keeps every run it finished.
"""

from __future__ import annotations

import argparse

from common import RESULTS, RUNS, execute, report, restore

# fp32 pinned: precision=auto picks bf16 on a CPU with native bf16, and the cells must compare like for like
# whichever machine each one ran on
BASE = ["experiment=pebble_walker2d", "steps=100000", "threads=1", "precision=fp32", "eval.every=10000",
        "snapshot.every=25000"]
ARMS = {  # tag -> overrides on top of BASE and the study's teacher and budget
    "pebble": [],
    "rune": ["reward.bonus=rune"],
    "surf": ["reward_model.semi=true", "reward_model.crop=surf"],
    "qpa": ["feedback.last_episodes=10", "agent.recent_fraction=0.5", "agent.recent_window=10000",
            "reward_model.crop=qpa"],
    "rime": ["reward_model.robust=rime"],
}
# (metric, folder below the study's, what it measures): the agent's return, and how well the reward model learned
# the task (Pearson correlation of learned and true per-step reward over the newest 10k steps, pbrl's diagnostic):
# at 100k steps Walker2d's return is still mostly seed, the reward's quality is not
REPORTS = [("final_eval_return", ".", "final eval return"),
           ("reward_correlation", "reward_correlation", "learned-true reward correlation")]
LAST = 3  # beside the final evaluation, each run's mean return over its last 3 (80k, 90k, 100k): less eval noise
STUDIES = {  # study -> (teacher overrides, budget, arms, reference arm for the ratios); the bar's study first
    "noise": (["teacher=mistake", "teacher.mistake=0.3"], 1000, ["pebble", "rime"], "pebble_oracle"),
    "efficiency": (["teacher=oracle"], 200, ["pebble", "surf", "rune", "qpa"], "pebble"),
}


def cells(study: str, seeds: str) -> list[list[str]]:
    """One multirun's overrides per arm of ``study`` (hydra names each run by its overrides)."""
    teacher, budget, arms, _ = STUDIES[study]
    common = [*BASE, f"feedback.max_feedback={budget}", f"feedback.mb_size={budget // 10}", f"seed={seeds}"]
    runs = [[*common, *teacher, f"tag={arm}", *ARMS[arm]] for arm in arms]
    if study == "noise":  # the reference: PEBBLE with a perfect teacher at the same budget
        runs.append([*common, "teacher=oracle", "tag=pebble_oracle"])
    return runs


def tag_of(overrides: list[str]) -> str:
    return next(o for o in overrides if o.startswith("tag=")).removeprefix("tag=")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=(*STUDIES, "all"), default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", help="comma-separated tags to run (default: the study's all, e.g. pebble,rime,"
                                       "pebble_oracle); the report always takes every finished run")
    parser.add_argument("--lanes", type=int, default=2, help="runs side by side (one torch thread each)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    studies = list(STUDIES) if args.study == "all" else [args.study]
    wanted = args.arms.split(",") if args.arms else None
    known = {tag_of(c) for study in studies for c in cells(study, "0")}
    if wanted and not set(wanted) <= known:
        parser.error(f"--arms: unknown {', '.join(sorted(set(wanted) - known))}; allowed: {', '.join(sorted(known))}")
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/
    for study in studies:
        sweep = RUNS / "addons" / study
        jobs = [(sweep, overrides) for seed in args.seeds.split(",") for overrides in cells(study, seed)
                if not wanted or tag_of(overrides) in wanted]
        if jobs and not args.report_only:  # seed by seed, every arm: a sitting that ends early leaves whole seeds
            execute(jobs, args.lanes, sweep)
        if not sweep.is_dir():
            continue
        _, _, arms, reference = STUDIES[study]
        compare = [opt for arm in arms if arm != "pebble" for opt in ("--compare", f"tag={arm}", "tag=pebble")]
        for metric, out, what in REPORTS:
            last = ["--last", str(LAST)] if metric == "final_eval_return" else []  # the correlation is steady
            report([sweep], RESULTS / "addons" / study / out, "tag",
                   f"PEBBLE add-ons on Walker2d-v5, {study} study: {what} at 100k env steps", metric=metric,
                   options=["--relative-to", f"tag={reference}", *compare, *last])

if __name__ == "__main__":
    main()
