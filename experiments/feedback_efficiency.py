"""Feedback efficiency: how close does PEBBLE with a few oracle labels get to SAC on the true reward?

    python experiments/feedback_efficiency.py                      # HalfCheetah, then Walker2d; resumable
    python experiments/feedback_efficiency.py --tasks halfcheetah --seeds 0,1,2
    python experiments/feedback_efficiency.py --report-only        # tables from what has run so far
    python experiments/feedback_efficiency.py --termination        # Hopper: env.terminate true vs false

Methods (all at the same env-step budget, ``--steps``, default 200k; fp32, as the presets pin it):
- ``sac``: SAC on the true reward (experiment=sac_<task>) with the agent of the task's PEBBLE preset, so
  the ratio is like for like: on HalfCheetah ``agent=sac_bpref_cpu`` since 2026-12-04 (the same settings as
  the ``sac_bpref`` arm), elsewhere the default SAC;
- ``pebble``: the task's PEBBLE preset (experiment=pebble_<task>): oracle teacher, disagreement
  selection, and 9k state-entropy pretraining steps except on HalfCheetah, where pretraining
  flips the cheetah onto its back (see conf/experiment/pebble_halfcheetah.yaml). HalfCheetah's preset
  runs B-Pref's SAC at CPU width with a linear reward output since 2026-12-04 (the same settings as
  ``pebble_bpref_sac_linear``); the README's rows measured before then name SB3's SAC settings;
- ``pebble_no_pretrain`` / ``pebble_pretrain``: the preset with pretraining off / with PEBBLE's
  published 9k steps; whichever of the two equals the preset is skipped (its row is ``pebble``);
- ``pebble_uniform``: the preset with uniform query selection;
- ``pebble_reset_actor`` (not run by default): 9k pretraining steps used as exploration data only
  (actor and temperature reset after them);
- ``ppo`` / ``prefppo`` (not run by default; ``--methods ppo,prefppo --steps 1000000``): PPO on the
  true reward (experiment=ppo_<task>, rl-zoo3's tuned settings) and PrefPPO, the same PPO on the
  learned reward with 32k state-entropy steps first (experiment=prefppo_<task>). Every env step
  counts, pretraining included. The report gives PrefPPO's return as a percentage of PPO's.
  ``prefppo_linear`` and ``prefppo_tanh`` name the reward model's output (the presets' linear, and
  B-Pref's tanh, which saturates on HalfCheetah); the published tables use these two.
  ``prefppo_no_pretrain`` is ``prefppo_linear`` without the 32k state-entropy steps;
  ``prefppo_softplus`` learns a non-negative reward (staying alive never costs reward on Walker2d).
  Each PPO folder also gets ``episodes.md``: per arm, the mean training-episode length and the true and
  learned reward per step over stretches of the run (``episode_table``).
  The ``ppo`` arm's runs are experiments/ppo_baseline.py's pbrl runs (``runs/ppo_baseline/pbrl``:
  the same preset and seeds, so the same training; evaluated every 25k steps): each is run once.
- HalfCheetah's gap (issue 17; not run by default): ``pebble_bpref_sac`` / ``sac_bpref`` are PEBBLE and
  SAC-true with B-Pref's SAC at CPU width (``agent=sac_bpref_cpu``), so the ratio stays like for like;
  ``pebble_early`` asks all labels by 20k (9k pretraining, rounds every 1k from 10k);
  ``pebble_bpref_spacing`` spaces rounds 20k apart as B-Pref's scripts do (10k, 30k, ..., 190k); both
  were screened with SB3's SAC settings and a tanh reward (the preset's then) and keep them (``agent=sac``,
  ``reward_model.output=tanh``), as ``pebble_bpref_sac`` keeps its tanh reward;
  ``pebble_bpref_sac_linear`` is ``pebble_bpref_sac`` with a linear (unsaturated) reward output, and now
  the preset itself. Arms pin what the preset changed under them, so a tag names what its runs ran
  (tests/test_experiments.py checks every archived run against its arm). Screen
  them with one seed, then confirm the best with three (and its true-reward arm)::

      python experiments/feedback_efficiency.py --tasks halfcheetah --seeds 0 \
          --methods pebble,sac,pebble_bpref_sac,sac_bpref,pebble_early,pebble_bpref_spacing

  HalfCheetah's SAC and PEBBLE runs keep their last snapshot; ``back_share.md`` beside the report gives
  each run's share of training steps on its back from 70k to 100k (``halfcheetah_flip.back_share``), and
  ``probe_turnover_barrier.py SAC_RUN PEBBLE_RUN`` asks of the kept snapshots, with no training, whether
  the learned reward drops on the way back from the back more than the true reward does.
The feedback budget (``--budgets``, default 1000) is asked in 10 rounds of budget/10 queries.

Each (task, method, budget) is one hydra sweep directory,
``runs/feedback_efficiency/<task>/<method>_<budget>`` (``<task>_ppo/`` for the PPO arms), filled one seed per multirun call; two lanes
run side by side with one torch thread each (this machine has 2 cores) and take the next seed from
one queue, in the order tasks × methods × seeds. Rerunning the script resumes unfinished runs and
skips finished ones, so the table can be completed over several sittings (finished runs are archived in
``experiments/results/archive/`` after each job and restored from there on a fresh checkout). The report
(``pbrl-report --by env.id,tag,feedback.max_feedback``) goes to ``experiments/results/feedback_efficiency/``:
mean ± std and IQM of the final eval return per task and method, each as a percentage of the
true-reward arm's (``--relative-to tag=sac``; ``tag=ppo`` for the PPO arms), the same at 200k env
steps for longer runs (``--at 200000``), and every run, failed and unfinished ones too, with its status.
"""

from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path

import yaml
from common import RESULTS, RUNS, compose, execute, preset_agent, report, restore

TASKS = ("halfcheetah", "walker2d")
METHODS = {  # name -> overrides on top of experiment=pebble_<task> (sac: experiment=sac_<task>)
    "pebble": [],  # the task's preset as it is
    "sac": None,
    "pebble_uniform": ["query.selection=uniform"],
    "pebble_no_pretrain": ["pretrain.steps=0"],
    "pebble_pretrain": ["pretrain.steps=9000"],  # PEBBLE's published 9k state-entropy steps
    "pebble_reset_actor": ["pretrain.steps=9000", "pretrain.reset_actor=true"],
    "pebble_tanh": ["reward_model.output=tanh"],  # PEBBLE's squashed per-step reward
    "pebble_linear": ["reward_model.output=linear"],  # unbounded per-step reward
    "pebble_scale5": ["reward_model.scale=5"],  # the learned reward x5, near the true reward's range
    "ppo": None,  # PPO on the true reward
    "prefppo": [],  # the task's PrefPPO preset as it is (its reward output is linear since 2026-12-03)
    # the PrefPPO arms name their reward model's output, so that a change of the preset never puts two settings
    # under one tag: linear (the presets' now) and B-Pref's tanh, which sat at ~0.98 per step on HalfCheetah for
    # running at 4000 and at 5100 alike (experiments/probe_reward_ceiling.py), leaving PPO nothing to climb
    "prefppo_linear": ["reward_model.output=linear"],
    "prefppo_tanh": ["reward_model.output=tanh"],
    # no state-entropy pretraining: random actions until an episode holds a segment (~2.4k steps on Walker2d),
    # then the rounds. Walker2d's PrefPPO trails PPO although its reward ranks PPO's gait above its own
    # (experiments/results/probe_reward_ceiling_walker2d.md): does the 32k-step start on the bonus cost it?
    "prefppo_no_pretrain": ["reward_model.output=linear", "pretrain.steps=0"],
    # a non-negative learned reward: labels between alive segments of equal length cannot see Walker2d's +1 per
    # step for staying up, and the linear model paid ~0 per step for the first 100k steps, so falling cost
    # PrefPPO nothing; its episodes stayed ~150 steps long to 250k while PPO's grew to 200-400 (episodes.csv)
    "prefppo_softplus": ["reward_model.output=softplus"],
    # issue 17's HalfCheetah arms: B-Pref's SAC at CPU width on both sides of the ratio, and the reward's schedule
    # (its reward output pinned since the preset learns a linear one: its tag still names the runs it names)
    "pebble_bpref_sac": ["agent=sac_bpref_cpu", "reward_model.output=tanh"],
    "sac_bpref": ["agent=sac_bpref_cpu"],  # the true-reward arm of pebble_bpref_sac
    # the schedule arms, screened with SB3's SAC settings and a tanh reward (the preset's until 2026-12-04), which
    # they keep
    "pebble_early": ["agent=sac", "reward_model.output=tanh", "pretrain.steps=9000",
                     "feedback.num_interact=1000"],  # rounds at 10k, 11k, ..., 19k
    "pebble_bpref_spacing": ["agent=sac", "reward_model.output=tanh", "pretrain.steps=9000",
                             "feedback.num_interact=20000"],  # 10k, 30k, ..., 190k
    # the tanh reward is saturated on upright running (0.96-0.99 per step from a 2900- to a 6300-return gait,
    # results/feedback_efficiency/halfcheetah/probe_reward_ceiling.md): B-Pref's SAC with an unbounded reward
    "pebble_bpref_sac_linear": ["agent=sac_bpref_cpu", "reward_model.output=linear"],
}
BASE = {"sac": "sac", "sac_bpref": "sac", "ppo": "ppo",  # an arm's own preset (else pebble_<task>)
        "prefppo": "prefppo", "prefppo_linear": "prefppo", "prefppo_tanh": "prefppo", "prefppo_no_pretrain": "prefppo",
        "prefppo_softplus": "prefppo"}
TRUE_REWARD = ("sac", "sac_bpref", "ppo")  # arms without a teacher: no budget
# runs and report under <task>_ppo, apart from PEBBLE's table
PPO_ARMS = ("ppo", "prefppo", "prefppo_linear", "prefppo_tanh", "prefppo_no_pretrain", "prefppo_softplus")
BY = "env.id,tag,feedback.max_feedback"  # the report's groups: one per arm and budget
AT = 200_000  # runs longer than this are also compared at this env step (PPO's 1M-step runs)
DEFAULT_METHODS = ("sac", "pebble", "pebble_no_pretrain", "pebble_pretrain", "pebble_uniform")


def same_as_preset(task: str, method: str) -> bool:
    """Whether an ablation arm only repeats the preset (e.g. pebble_pretrain where the preset pretrains 9k steps):
    its overrides compose into the preset's own config."""
    if not METHODS[method] or method in BASE or method in TRUE_REWARD:
        return False
    preset = [f"experiment=pebble_{task}"]
    return compose(preset)[0] == compose([*preset, *METHODS[method]])[0]


PPO_BASELINE = RUNS / "ppo_baseline" / "pbrl"  # where the ppo arm's runs live (shared with ppo_baseline.py)
PPO_STEPS = 1_000_000  # the ppo_<task> presets' steps


def ppo_overrides(task: str, steps: int, seeds: str) -> list[str]:
    """The ``ppo`` arm: exactly experiments/ppo_baseline.py's overrides, so both scripts name (and share) one run."""
    return [f"experiment=ppo_{task}", f"seed={seeds}", *([] if steps == PPO_STEPS else [f"steps={steps}"])]


def ppo_runs(task: str, steps: int) -> list[Path]:
    """The ``ppo`` arm's runs of ``task`` at ``steps`` that have logged something (hydra names them by sorted overrides)."""
    name = re.compile(rf"experiment=ppo_{task},seed=\d+" + ("" if steps == PPO_STEPS else f",steps={steps}"))
    return [p for p in sorted(PPO_BASELINE.glob("*")) if name.fullmatch(p.name) and (p / "metrics.csv").exists()]


def overrides(task: str, method: str, budget: int, steps: int, seeds: str) -> list[str]:
    """The pbrl-train overrides of one (task, method, budget) multirun."""
    if method == "ppo":
        return ppo_overrides(task, steps, seeds)
    common = [f"steps={steps}", f"seed={seeds}", "threads=1", "eval.every=10000",
              "snapshot.every=25000"]
    if task == "halfcheetah" and method not in PPO_ARMS:  # the last snapshot's episode store: the time on the back
        common.append("snapshot.keep=true")
    base = BASE.get(method, "pebble")
    if method == "sac" and (agent := preset_agent(f"pebble_{task}")):  # the PEBBLE preset's agent: like for like
        common.insert(0, f"agent={agent}")
    if method in TRUE_REWARD:
        return [f"experiment={base}_{task}", f"tag={method}", *(METHODS[method] or []), *common]
    return [f"experiment={base}_{task}", f"tag={method}", f"feedback.max_feedback={budget}",
            f"feedback.mb_size={max(1, budget // 10)}", *METHODS[method], *common]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, from: " + ", ".join(TASKS))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--budgets", default="1000", help="comma-separated feedback budgets (queries)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (>= 3 for the table)")
    parser.add_argument("--steps", type=int, default=200_000, help="env steps per run (the fixed budget)")
    parser.add_argument("--lanes", type=int, default=2, help="multiruns side by side (1 torch thread each)")
    parser.add_argument("--report-only", action="store_true", help="only aggregate what has run")
    parser.add_argument("--termination", action="store_true",
                        help="instead: PEBBLE on Hopper-v5 with env.terminate=true vs false (issue 4, item 5)")
    args = parser.parse_args()
    restore()  # finished runs of earlier sittings (experiments/results/archive) back into runs/

    if args.termination:
        return termination(args)
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    for name, allowed, given in (("task", TASKS, tasks), ("method", METHODS, methods)):
        bad = [g for g in given if g not in allowed]
        if bad:
            parser.error(f"unknown {name} {bad[0]!r}; allowed: {', '.join(allowed)}")
    budgets = [int(b) for b in args.budgets.split(",")]
    jobs = []
    for task in tasks:
        for method in methods:
            if same_as_preset(task, method):
                print(f"{task}: {method} is the preset itself; its row is pebble's", flush=True)
                continue
            for budget in ([0] if method in TRUE_REWARD else budgets):
                name = method if method in TRUE_REWARD else f"{method}_{budget}"
                sweep = PPO_BASELINE if method == "ppo" else RUNS / "feedback_efficiency" / folder(task, method) / name
                jobs.append((sweep,
                             overrides(task, method, budget, args.steps, args.seeds)))
    if not args.report_only:
        execute(jobs, args.lanes, RUNS / "feedback_efficiency")
    for task, name in sorted({(task, folder(task, method)) for task in tasks for method in methods}):
        # sweeps with at least one run that has logged something, if only its status (run.json)
        sweeps = [p for p in sorted((RUNS / "feedback_efficiency" / name).glob("*"))
                  if p.is_dir() and (any(p.glob("*/metrics.csv")) or any(p.glob("*/run.json")))]
        if name.endswith("_ppo"):
            sweeps += ppo_runs(task, args.steps)
        if name == "halfcheetah" and sweeps:  # first: report() archives the back_share.json it writes
            back_share_table(sweeps, RESULTS / "feedback_efficiency" / name / "back_share.md")
        if sweeps:
            report(sweeps, RESULTS / "feedback_efficiency" / name, BY,
                   f"Feedback efficiency on {name}: final eval return at {args.steps} env steps "
                   "(feedback.max_feedback is unused by the true-reward arms)",
                   options=report_options(name, args.steps))
        if name.endswith("_ppo") and sweeps:
            episode_table(sweeps, RESULTS / "feedback_efficiency" / name / "episodes.md")


def back_share_table(sweeps: list[Path], out: Path, window: tuple[int, int] = (70_000, 100_000)) -> None:
    """Issue 17's HalfCheetah measure beside the return: the share of training steps on the back in ``window``,
    read from each run's kept snapshot (runs without one, or not that far yet, are listed as such).

    Snapshots are not archived (they hold the replay buffer), so a finished run's share is also written beside
    it as ``back_share.json``, which the archive keeps: on a fresh checkout the table reads it from there."""
    import json

    from halfcheetah_flip import back_share

    rows = []
    for run in sorted(r for sweep in sweeps for r in sweep.iterdir() if (r / "config.yaml").exists()):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        share, kept = back_share(run, *window), run / "back_share.json"
        if share is not None and summary:
            kept.write_text(json.dumps({"window": list(window), "share": share}) + "\n")
        elif share is None and kept.exists():
            stored = json.loads(kept.read_text())
            share = stored["share"] if stored["window"] == list(window) else None
        rows.append((cfg.get("tag", ""), cfg["seed"], share, summary.get("final_eval_return")))
    lines = [f"# HalfCheetah-v5: share of training steps on the back, {window[0] // 1000}k–{window[1] // 1000}k",
             "", "Torso pitch past ±90° (`experiments/halfcheetah_flip.py`), from each run's kept snapshot, or where",
             "the snapshot is not in this checkout, from the `back_share.json` written beside the run from it.", "",
             "| arm | seed | on the back | final eval return |", "|---|---|---|---|"]
    for tag, seed, share, ret in rows:
        lines.append(f"| {tag} | {seed} | {'–' if share is None else f'{share:.0%}'} | "
                     f"{'unfinished' if ret is None else f'{ret:.0f}'} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


EPISODE_BINS = (0, 100_000, 250_000, 500_000, 1_000_000)  # episodes.csv's env_step: where training episodes ended


def episode_table(sweeps: list[Path], out: Path, bins: tuple[int, ...] = EPISODE_BINS) -> None:
    """How long each arm's training episodes last, and what the reward it trains on pays per step, over stretches
    of the run: on a task that ends episodes when the body falls, a learned reward near 0 per step makes
    falling free. Mean over every finished run's episodes.csv, per arm (runs still going are left out)."""
    import pandas as pd

    from pbrl.report import find_runs

    runs = [p for s in sweeps for p in find_runs(s) if (p / "summary.json").exists() and (p / "episodes.csv").exists()]
    frames = []
    for run in runs:
        episodes = pd.read_csv(run / "episodes.csv")
        episodes["arm"] = yaml.safe_load((run / "config.yaml").read_text()).get("tag", "")
        episodes["run"] = str(run)
        frames.append(episodes)
    if not frames:
        return
    episodes = pd.concat(frames)
    edges = [f"{b // 1000}k" if b >= 1000 else str(b) for b in bins]
    labels = [f"{a}–{b}" for a, b in itertools.pairwise(edges)]
    episodes["stretch"] = pd.cut(episodes.env_step, list(bins), labels=labels, include_lowest=True)
    lines = ["# Training episodes: mean length and reward per step", "",
             "From each finished run's episodes.csv, by the env step where the episode ended. `true` is the task's",
             "reward per step; `learned` the reward model's per step over the episodes it scored (none before its first",
             "round, and none for the true-reward arm).",
             "", "| arm | runs | " + " | ".join(f"{b}: length, true, learned" for b in labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for arm, group in episodes.groupby("arm"):
        cells = []
        for label in labels:
            part = group[group.stretch == label]
            if part.empty:
                cells.append("–")
                continue
            steps = part.length.sum()
            scored = part[part.learned_return.notna()]  # none before the first reward model
            learned = scored.learned_return.sum() / scored.length.sum() if len(scored) else None
            cells.append(f"{part.length.mean():.0f}, {part['return'].sum() / steps:.2f}, "
                         + ("–" if learned is None else f"{learned:.2f}"))
        lines.append(f"| {arm} | {group.run.nunique()} | " + " | ".join(cells) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def folder(task: str, method: str) -> str:
    """The runs' and the report's folder: ``<task>`` for SAC and PEBBLE, ``<task>_ppo`` for PPO and PrefPPO."""
    return f"{task}_ppo" if method in PPO_ARMS else task


def report_options(name: str, steps: int) -> list[str]:
    """pbrl-report flags of one report folder: every arm's mean as a percentage of its true-reward arm's (SAC's
    for PEBBLE, PPO's in ``<task>_ppo``), and the eval return at ``AT`` env steps when the runs go further."""
    reference = "tag=ppo" if name.endswith("_ppo") else "tag=sac"
    return ["--relative-to", reference, *(["--at", str(AT)] if steps > AT else [])]


def termination(args: argparse.Namespace) -> None:
    """PEBBLE on Hopper-v5 with training episodes that end when it falls (true) or run to 1000 steps (false)."""
    sweep = RUNS / "feedback_efficiency" / "termination"
    if not args.report_only:
        execute([(sweep / f"terminate_{flag}", ["experiment=pebble_hopper", f"env.terminate={flag}",
                                                f"tag=terminate_{flag}", f"steps={args.steps}",
                                                f"seed={args.seeds}", "threads=1"])
                 for flag in ("false", "true")], args.lanes, RUNS / "feedback_efficiency")
    report([sweep], RESULTS / "feedback_efficiency" / "termination", "env.id,env.terminate",
           "PEBBLE on Hopper-v5: training with and without termination")


if __name__ == "__main__":
    main()
