"""Shared plumbing of the experiment scripts: a resumable hydra multirun, then pbrl-report.

Each script is a thin wrapper: it names the sweep (overrides) and the folder it lives in. Rerunning
a script reruns the same multiruns into the same folders, so finished runs return at once and
interrupted ones resume from their snapshots.

``runs/`` is ignored by git, and a fresh checkout (a new machine, a new session) starts without it, so a
study longer than one sitting would start over. Each finished run's small files (its config, metrics,
summary; no snapshots, videos or TensorBoard files) are therefore archived under
``experiments/results/archive/`` at the same path relative to ``runs/`` as the run (``archive``, after
every multirun and report), and committed with the tables; ``restore`` copies them back into ``runs/``
before a script runs, so its multiruns skip them and its reports count them.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pbrl  # noqa: F401  (its warning filter: conf/hydra/launcher/ takes the launcher plugins' names)

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"  # ignored by git: run directories, snapshots, videos
RESULTS = ROOT / "experiments" / "results"  # committed: tables and plots
ARCHIVE = RESULTS / "archive"  # committed: the finished runs behind the tables, mirroring runs/ (see archive())
# what a finished run keeps in the archive: enough for pbrl-report and the finished-run check (not train.log: its
# lines name the absolute run folder)
KEPT = ("config.yaml", "summary.json", "run.json", "metrics.csv", "rounds.csv", "episodes.csv",
        ".hydra/overrides.yaml", "back_share.json")  # back_share.json: feedback_efficiency.back_share_table


def _rel(path: Path) -> str:
    """Paths relative to the repository root: nothing machine-specific ends up in committed reports."""
    return str(Path(path).resolve().relative_to(ROOT))


def compose(overrides: list[str]) -> tuple[dict, dict]:
    """The config ``pbrl-train <overrides>`` would run with (a resolved plain dict), and the option hydra chose in
    each config group (``{"agent": "sac_bpref_cpu", "env": "halfcheetah", ...}``)."""
    from omegaconf import OmegaConf, open_dict

    from pbrl.train import compose as pbrl_compose

    cfg = pbrl_compose(overrides, hydra_node=True)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True), choices


def preset_agent(experiment: str) -> str | None:
    """The agent a preset (``conf/experiment/<experiment>.yaml``) selects, or None where it keeps the default: a
    true-reward run given the same agent as a PEBBLE preset compares like for like."""
    agent = compose([f"experiment={experiment}"])[1]["agent"]
    return None if agent == compose([])[1]["agent"] else agent


def finished(run: Path) -> bool:
    """Whether ``run`` holds a finished run: a summary.json, and a run.json (where there is one) that says so."""
    if not (run / "summary.json").is_file():
        return False
    info = run / "run.json"
    return not info.is_file() or json.loads(info.read_text()).get("status") == "finished"


def archive(dirs: list[Path], runs: Path = RUNS, to: Path = ARCHIVE) -> int:
    """Copy the ``KEPT`` files of every finished run at or below ``dirs`` (inside ``runs``) to the same path
    under ``to``. A run archived before keeps its files; only kept files it lacks (a measure written after the
    run finished) are added. Returns how many runs were archived now."""
    new = 0
    for d in dirs:
        d = Path(d)
        if not d.is_dir() or not d.resolve().is_relative_to(runs.resolve()):
            continue
        for summary in sorted(d.rglob("summary.json")):
            run = summary.parent
            dest = to / run.resolve().relative_to(runs.resolve())
            if not finished(run):
                continue
            before = (dest / "summary.json").exists()
            for name in KEPT:
                if (run / name).is_file() and not (before and (dest / name).exists()):
                    (dest / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run / name, dest / name)
            new += not before
    if new:
        where = _rel(to) if to.resolve().is_relative_to(ROOT) else to
        print(f"archived {new} finished run(s) under {where}", flush=True)
    return new


def restore(runs: Path = RUNS, archived: Path = ARCHIVE) -> int:
    """Copy each archived run back to ``runs`` where that folder has no run yet (no metrics.csv); a run in
    progress there is left alone, and a finished one only gains the archived files it lacks. Returns how many
    runs were restored."""
    back = 0
    for summary in sorted(archived.rglob("summary.json")):
        src = summary.parent
        dest = runs / src.relative_to(archived)
        if (dest / "summary.json").exists():
            for name in KEPT:
                if (src / name).is_file() and not (dest / name).exists():
                    shutil.copy2(src / name, dest / name)
            continue
        if (dest / "metrics.csv").exists():
            continue
        shutil.copytree(src, dest, dirs_exist_ok=True)
        back += 1
    if back:
        where = _rel(runs) if runs.resolve().is_relative_to(ROOT) else runs
        print(f"restored {back} finished run(s) from the archive into {where}", flush=True)
    return back


def multirun(sweep_dir: Path, overrides: list[str], n_jobs: int = 2) -> int:
    """``pbrl-train -m <overrides>`` into ``sweep_dir`` (one subfolder per override set); its finished runs archived."""
    cmd = [sys.executable, "-m", "pbrl.train", "-m", *overrides, f"hydra.sweep.dir={_rel(sweep_dir)}",
           f"hydra.launcher.n_jobs={n_jobs}", "progress=false"]
    print("+", " ".join(cmd[1:]), flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    archive([sweep_dir])
    return code


def run_lane(jobs: "queue.SimpleQueue[tuple[Path, list[str]]]", log: Path) -> None:
    """Take multiruns from the shared queue one after another until it is empty (one lane of those side by side)."""
    with open(log, "a") as f:
        while True:
            try:
                sweep, args = jobs.get_nowait()
            except queue.Empty:
                return
            cmd = [sys.executable, "-m", "pbrl.train", "-m", *args, f"hydra.sweep.dir={_rel(sweep)}",
                   "hydra.launcher.n_jobs=1", "progress=false"]
            print("+", " ".join(cmd[1:]), flush=True)
            f.write("+ " + " ".join(cmd[1:]) + "\n")
            f.flush()
            subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
            archive([sweep])  # committed with the tables: a later sitting restores it instead of rerunning it


def execute(jobs: list[tuple[Path, list[str]]], lanes: int, log_dir: Path) -> None:
    """Run the jobs in order on ``lanes`` lanes side by side; a lane that is done takes the next job.

    Each multirun is split into one job per seed (same sweep directory, so hydra names the run
    directories exactly as one multirun over all seeds would): a lane never idles while another has
    seeds queued, and finished runs are skipped in a second. Each lane logs to ``log_dir/lane<i>.log``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for sweep, args in jobs:
        seeds = next(a for a in args if a.startswith("seed=")).removeprefix("seed=").split(",")
        for seed in seeds:
            todo.put((sweep, [a if not a.startswith("seed=") else f"seed={seed}" for a in args]))
    threads = [threading.Thread(target=run_lane, args=(todo, log_dir / f"lane{i}.log")) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def report(dirs: list[Path], out: Path, by: str, title: str, metric: str | None = None,
           options: list[str] | None = None) -> int:
    """``pbrl-report <dirs> --by <keys> --out <out> [--metric <key>] [options]``: tables and plots, printed and saved.

    ``options`` are further pbrl-report flags, e.g. ``["--at", "200000", "--relative-to", "tag=sac"]``.
    The finished runs among ``dirs`` are archived first. A committed report is never replaced by one from
    fewer runs: where runs it lists are gone (run before the archive existed, on another checkout), the new
    report goes to ``<out>/partial/`` instead, with a note."""
    archive(dirs)
    missing = lost_runs(dirs, out)
    if missing:
        print(f"note: {len(missing)} run(s) of {_rel(out)}/summary.csv are in neither runs/ nor the archive "
              f"(e.g. {missing[0]}); writing this report to {_rel(out)}/partial/ and keeping the committed one",
              flush=True)
        out = out / "partial"
    cmd = [sys.executable, "-m", "pbrl.report", *map(_rel, dirs), "--by", by, "--out", _rel(out), "--title", title,
           *(["--metric", metric] if metric else []), *(options or [])]
    print("+", " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def lost_runs(dirs: list[Path], out: Path) -> list[str]:
    """Finished runs listed in ``out/summary.csv`` (a report written before) that no longer exist below ``dirs``.

    A run that was still going when that report was written is not counted: it was never archived, and a
    session that ended under it took it along (its rerun starts it again)."""
    import csv

    listed = out / "summary.csv"
    if not listed.is_file():
        return []
    with open(listed) as f:
        before = [row["run"] for row in csv.DictReader(f)
                  if row.get("run") and row.get("status", "finished") == "finished"]
    from pbrl.report import ReportError, find_runs

    # pbrl-report names a run relative to its one dir, or, given several, relative to ROOT (it is given the dirs
    # relative to ROOT). The report before may have had only the first of these dirs (a variant's sweep joined
    # since), so a run counts as here under either name.
    here = set()
    for i, root in enumerate(dirs):
        try:
            here |= {name for path in find_runs(root)
                     for name in ([path.relative_to(root).as_posix()] if i == 0 else []) + [_rel(path)]}
        except ReportError:  # a dir with no runs (yet): pbrl-report would say so
            pass
    return [run for run in before if run not in here]


def machine() -> str:
    """The CPU model, its torch kernel capability and core count, for every speed figure (CPUs differ between machines)."""
    from pbrl.lifecycle import describe_machine

    m = describe_machine()
    return f"{m['cpu']}, {m['cpu_capability']}, {m['cpu_cores']} cores"


def write_table(lines: list[str], out: Path) -> None:
    """Print a results file's lines and write them to ``out`` (its folder created)."""
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
