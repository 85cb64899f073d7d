"""``pbrl-report``: ``pbrl-train`` runs as two tidy pandas tables, aggregated, plotted and compared.

``load_runs(dirs)`` gives one row per run: ``run`` (its path below the dir given), ``status`` and
``error`` (from run.json: running | finished | failed | preempted; without one, "finished" when
summary.json exists, else "unfinished"), ``task`` (``env.id``; for Meta-World, whose ids take the task
as a keyword, the id and ``env.kwargs.env_name``), the config as dotted keys (``env.id``), the
summary's and run.json's keys. ``load_curves(runs)`` gives one row per evaluation (metrics.csv, whose
``labels`` counts the labels used so far). ``notebooks/analysis.ipynb`` uses the same functions. Each group of
``--by`` keys gets its runs counted by status and, over finished runs, mean, median, std and the IQM with a
95% stratified-bootstrap CI from rliable (Agarwal et al., 2021); ``--compare`` adds rliable's
probability of improvement. Writes ``OUT/report.md``, ``OUT/summary.csv`` (one row per run) and
``OUT/curves.png``; bad input ends with ``pbrl-report: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import yaml

PROG = "pbrl-report"
REPS = 2000  # bootstrap resamples
PROGRESS = ("env_steps", "labels", "steps_per_s", "wall_time_s")  # from the last evaluation until a summary has them
# a run's cost: wall time counts pauses and waiting for a shared core, the process's CPU time does not
TIMES = ("steps_per_s", "wall_time_s", "cpu_time_s")
TASK = "task"  # returns compare only within one: P(improvement), --relative-to and the plot's panels split by it


class ReportError(Exception):
    """Bad input (missing directory, corrupt file, unknown key); ``main`` prints it in one line."""


def find_runs(root: str | Path) -> list[Path]:
    """Run folders at or below ``root``: those with summary.json or run.json, or metrics.csv beside config.yaml."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{'not a directory' if root.exists() else 'directory not found'}: {root}")
    found = {p.parent for name in ("summary.json", "run.json") for p in root.rglob(name)}
    found |= {p.parent for p in root.rglob("metrics.csv") if (p.parent / "config.yaml").is_file()}
    if not found:
        raise ReportError(f"no runs found below {root}: expected folders with summary.json, run.json or metrics.csv")
    return sorted(found)


def _read(path: Path, parse=None):
    """A JSON or YAML file's mapping ({} if absent), or ``parse`` of its text; failures are one-line ReportErrors."""
    if parse is None and not path.is_file():
        return {}
    try:
        value = (parse or (json.loads if path.suffix == ".json" else yaml.safe_load))(path.read_text())
    except Exception as exc:  # json, yaml and csv errors share no base class; YAML's span several lines
        raise ReportError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    if parse is None and not isinstance(value, dict):
        raise ReportError(f"cannot read {path}: expected a mapping at the top level")
    return value


def _metrics(run: Path) -> pd.DataFrame:
    """A run's metrics.csv, sorted by env step (no rows before its first evaluation)."""
    path = run / "metrics.csv"
    if not path.is_file():
        return pd.DataFrame({"env_step": pd.Series(dtype=float), "eval_return_mean": pd.Series(dtype=float)})
    metrics = _read(path, lambda text: pd.read_csv(io.StringIO(text)))
    for column in ("env_step", "eval_return_mean"):
        if column not in metrics or (len(metrics) and not pd.api.types.is_numeric_dtype(metrics[column])):
            raise ReportError(f"cannot read {path}: column {column} is missing or not numeric")
    return metrics.sort_values("env_step", kind="stable", ignore_index=True)


def run_names(dirs: Sequence[str | Path]) -> dict[str, Path]:
    """Each run below ``dirs`` by the name a report gives it: its path relative to the one dir given, or, with
    several dirs, that path behind the dir as given. Overlapping dirs (runs and runs/sac) list a run once."""
    names, seen = {}, set()
    for root in map(Path, dirs):
        for path in find_runs(root):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            rel = path.relative_to(root).as_posix()
            names[(root / rel).as_posix() if len(dirs) > 1 else (rel if rel != "." else path.resolve().name)] = path
    return names


def load_runs(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per run below ``dirs`` (with several dirs, ``run`` starts with the dir given).

    Columns: ``run``, ``path``, ``status`` and ``error`` (run.json's), ``task``, the config's dotted keys, the
    summary's keys, and run.json's other keys (each only where the ones before have none). Until a run finishes,
    ``env_steps`` (run.json's ``env_step`` if it has one), ``labels``, ``steps_per_s`` and ``wall_time_s``
    come from its last evaluation.
    """
    rows = []
    for name, path in run_names(dirs).items():
        metrics, summary, info = _metrics(path), _read(path / "summary.json"), _read(path / "run.json")
        last = metrics.iloc[-1] if len(metrics) else pd.Series(dtype=float)
        progress = last.reindex(["env_step", *PROGRESS[1:]]).set_axis(PROGRESS).to_dict()
        progress["env_steps"] = info.get("env_step", progress["env_steps"])  # run.json's is the newer
        row = {"run": name, "path": str(path), **progress, **info, **summary, **_read(path / "config.yaml")}
        row["status"] = info.get("status") or ("finished" if summary else "unfinished")
        row["error"] = info.get("error")
        rows.append(row)
    runs = pd.json_normalize(rows, sep=".")  # nested config -> dotted columns (env.id, teacher.name)
    runs[TASK] = _tasks(runs)
    numbers = runs[list(PROGRESS)].apply(pd.to_numeric, errors="coerce")  # a null in a summary is NaN
    if "cpu_time_s" in runs:  # summaries since pbrl kept it; null for a run resumed from an older snapshot
        numbers["cpu_time_s"] = pd.to_numeric(runs["cpu_time_s"], errors="coerce")
    return runs.assign(**numbers.astype({"env_steps": "Int64", "labels": "Int64"}))  # whole numbers beside NaN


def _tasks(runs: pd.DataFrame) -> pd.Series:
    """Each run's task, from its config (runs that never reached a summary have one too)."""
    from pbrl.envs.suites import task_name

    ids = runs["env.id"] if "env.id" in runs else pd.Series(None, index=runs.index, dtype=object)
    names = runs["env.kwargs.env_name"] if "env.kwargs.env_name" in runs else pd.Series(None, index=runs.index)
    return pd.Series([task_name(i, {"env_name": n if isinstance(n, str) else None}) if isinstance(i, str) else None
                      for i, n in zip(ids, names)], index=runs.index, dtype=object)


def load_curves(runs: pd.DataFrame | Sequence[str | Path]) -> pd.DataFrame:
    """One row per evaluation: ``run`` (and its ``task``, ``seed``, ``status``, ``group``), ``env_step``,
    ``labels`` (NaN for runs that ask none) and the other metrics.csv columns. ``runs``: a load_runs table or dirs."""
    runs = runs if isinstance(runs, pd.DataFrame) else load_runs(runs)
    carried = [c for c in ("run", TASK, "seed", "status", "group") if c in runs]
    curves = pd.concat([_metrics(Path(path)).assign(**dict(zip(carried, values)))
                        for path, *values in runs[["path", *carried]].itertuples(index=False)], ignore_index=True)
    curves["labels"] = curves.get("labels", np.nan)
    return curves[[*carried, "env_step", "labels", *curves.columns.difference([*carried, "env_step", "labels"])]]


def last_evaluations(curves: pd.DataFrame, y: str, k: int) -> pd.Series:
    """Each run's mean of ``y`` over its last ``k`` evaluations, by run (NaN for a run with fewer than ``k``).

    A steadier end point than the one final evaluation: Meta-World's success rate, say, jumps between 0 and 1
    from one evaluation to the next. An env step logged twice (a resumed run) counts once, its last value.
    """
    per_step = curves.dropna(subset=[y]).groupby(["run", "env_step"])[y].last()  # sorted by run, then env step
    return per_step.groupby(level="run").agg(lambda s: s.iloc[-k:].mean() if len(s) >= k else math.nan)


def as_text(value) -> str:
    """A key's value as a user types it: 1000, not 1000.0; None for a run without the key."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def group_labels(runs: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """Each run's group, ``key=value,key=value`` over ``keys``; a key no run has is an error (a typo, most likely)."""
    for key in keys:
        if key not in runs or runs[key].isna().all():
            raise ReportError(f"--by key {key!r} is in no run's config.yaml, summary.json or run.json")
    return runs[list(keys)].apply(lambda row: ",".join(f"{k}={as_text(v)}" for k, v in row.items()), axis=1)


def select(frame: pd.DataFrame, spec: str) -> pd.DataFrame:
    """The rows matching ``key=value[,key=value]`` (as numbers when both are, else as text, case-insensitively)."""
    mask = pd.Series(True, index=frame.index)
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in frame:
            raise ReportError(f"{spec!r}: expected KEY=VALUE[,KEY=VALUE] with keys of the run table, e.g. tag=sac")
        mask &= frame[key].map(lambda have: _same(as_text(have), value))
    return frame[mask]


def _same(have: str, want: str) -> bool:
    """``0.0`` selects a run whose value is 0; ``Oracle`` one whose value is oracle."""
    try:
        return float(have) == float(want)
    except ValueError:
        return have.lower() == want.lower()


def _interval(scores, func, reps: int) -> tuple[float, float, float]:
    """rliable's estimate of ``func(*scores)`` and its 95% stratified-bootstrap CI: ``(point, low, high)``."""
    from rliable import library

    state = np.random.get_state()  # rliable resamples with np.random: its random_state never reaches the resampling
    np.random.seed(0)  # so a report's CIs are the same on every call
    try:
        point, ci = library.get_interval_estimates({"x": scores}, func, reps=reps)
    finally:
        np.random.set_state(state)
    return float(np.squeeze(point["x"])), *np.asarray(ci["x"], dtype=float).ravel()[:2].tolist()


def iqm_ci(scores, reps: int = REPS) -> tuple[float, float, float]:
    """IQM of per-run scores (NaN ignored) and its 95% CI over resampled runs; the CI is NaN for one run."""
    from rliable import metrics

    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)][:, None]  # [num_runs, num_tasks=1]: a group is one task
    if len(scores) < 2:
        return (float(metrics.aggregate_iqm(scores)) if len(scores) else math.nan), math.nan, math.nan
    return _interval(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps)


def probability_of_improvement(runs: pd.DataFrame, a: str, b: str, metric: str, reps: int = REPS) -> pd.DataFrame:
    """P(a finished run selected by ``a`` beats one selected by ``b`` on ``metric``; ties count half), with its CI.

    One row per task both have runs of (one row "all" if none is shared): returns do not compare across tasks.
    """
    from rliable import metrics

    for spec in (a, b):
        if select(runs, spec).empty:  # a typo, most likely; runs that have not finished yet give no row
            raise ReportError(f"--compare: {spec!r} selects no run")
    done = runs[runs["status"] == "finished"].dropna(subset=[metric])
    x, y = select(done, a), select(done, b)
    if x.empty or y.empty:
        return pd.DataFrame(columns=[TASK, "A", "B", "runs A", "runs B", "P(A > B)", "low", "high"])
    tasks = sorted(set(x[TASK].dropna()) & set(y[TASK].dropna())) if TASK in runs else []
    rows = []
    for task, (xe, ye) in ({t: (x[x[TASK] == t], y[y[TASK] == t]) for t in tasks} or {"all": (x, y)}).items():
        scores = tuple(s[metric].to_numpy(float)[:, None] for s in (xe, ye))  # [runs, 1 task] each
        p, low, high = _interval(scores, metrics.probability_of_improvement, reps)
        rows.append({TASK: task, "A": a, "B": b, "runs A": len(xe), "runs B": len(ye),
                     "P(A > B)": p, "low": low, "high": high})
    return pd.DataFrame(rows)


def aggregate(runs: pd.DataFrame, keys: Sequence[str], metric: str, finished_only: bool = True,
              reps: int = REPS) -> pd.DataFrame:
    """One row per group: the keys (as text), ``runs``, ``finished``, ``not finished`` (``1 failed, 1 running``),
    then over finished runs (all runs if not ``finished_only``) with a value: ``n``, ``mean``, ``median``, ``std``
    (ddof=1), ``iqm``, ``iqm_low``, ``iqm_high``, ``min``, ``max``; and finished runs' mean ``steps_per_s``,
    ``wall_time_s`` and ``cpu_time_s`` (where some run has it)."""
    keys = list(keys)
    frame = runs.assign(**{k: runs[k].map(as_text) for k in keys})
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    done = frame[frame["status"] == "finished"]
    scored = (done if finished_only else frame).groupby(keys)[metric]
    ci = scored.apply(lambda s: iqm_ci(s, reps))  # one (iqm, low, high) tuple per group
    table = frame.groupby(keys)["status"].agg(runs="size", finished=lambda s: int((s == "finished").sum()),
                                              **{"not finished": _not_finished}).join([
        scored.agg(n="count", mean="mean", median="median", std="std"),
        pd.DataFrame(ci.tolist(), index=ci.index, columns=["iqm", "iqm_low", "iqm_high"]),
        scored.agg(min="min", max="max"), done.groupby(keys)[[c for c in TIMES if c in frame]].mean()])
    return table.assign(n=table["n"].fillna(0).astype(int)).reset_index()  # n: 0 in a group without finished runs


def _not_finished(status: pd.Series) -> str:
    """The runs of a group that did not finish, counted by status: ``1 failed, 2 running`` (``0`` for none)."""
    return ", ".join(f"{n} {s}" for s, n in status[status != "finished"].value_counts().sort_index().items()) or "0"


def relative_to(table: pd.DataFrame, spec: str, column: str = "mean") -> pd.Series:
    """Each group's ``column`` as a fraction of that of the group ``spec`` names (of its task or env.id, if grouped by
    one)."""
    key = next((k for k in (TASK, "env.id") if k in table), None)
    env = table[key] if key else pd.Series("", index=table.index)
    ref = env[select(table, spec).index]
    if ref.duplicated().any():
        raise ReportError(f"--relative-to {spec!r} names several groups of one {key or 'report'}: add keys")
    return table[column] / env.map(pd.Series(table.loc[ref.index, column].to_numpy(), index=ref.to_numpy()))


def _fmt(x) -> str:
    """A table cell: one decimal from 10 up, three significant digits below, ``—`` for no value."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return (f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}") if isinstance(x, (float, np.floating)) else str(x)


def markdown(table: pd.DataFrame) -> str:
    """``DataFrame.to_markdown`` with every cell formatted by ``_fmt`` (as objects: Int64 cells stay whole)."""
    cells = table.astype(object).map(lambda x: " ".join(_fmt(x).split()).replace("|", "\\|"))  # an error line's | or \n
    return cells.to_markdown(index=False, disable_numparse=True)


def _aggregate_markdown(table: pd.DataFrame, keys: Sequence[str], reference: str | None) -> str:
    """The aggregate table for report.md; with a ``reference`` group, each median and mean as a percentage of its."""
    unknown = [c for c in TIMES[2:] if c in table and table[c].isna().all()]
    shown = table.drop(columns=["iqm_low", "iqm_high", *unknown]).rename(columns={
        "iqm": "IQM [95% CI]", "steps_per_s": "steps/s", "wall_time_s": "wall time (s)", "cpu_time_s": "CPU time (s)"})
    shown["IQM [95% CI]"] = [f"{_fmt(i)} [{_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(lo) else _fmt(i)
                             for i, lo, hi in table[["iqm", "iqm_low", "iqm_high"]].itertuples(index=False)]
    for stat in ("median", "mean") if reference else ():
        shown[f"{stat} / {reference}"] = relative_to(table, reference, stat).map(
            lambda r: f"{r:.0%}" if math.isfinite(r) else "—")
    return markdown(shown)


def plot_curves(curves: pd.DataFrame, x: str = "env_step", y: str = "eval_return_mean", title: str | None = None):
    """``y`` against ``x``: mean and ±std band over each group's runs, one panel (own y scale) per task."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = curves.dropna(subset=[x, y]).astype({x: float, y: float})
    if data.empty:
        fig = plt.figure(figsize=(6, 1))
        fig.text(0.5, 0.5, f"no run has both {x} and {y} yet", ha="center")
        return fig
    data[TASK] = data[TASK].fillna("?") if TASK in data else "?"
    group = data["group"] if "group" in data else pd.Series("all", index=data.index)
    hue = group.str.replace(r"(^|,)(env\.id|task)=[^,]*", "", regex=True).str.strip(",")  # the panel names the task
    data["group"] = hue.where(hue != "", group)
    n_envs = data[TASK].nunique()
    grid = sns.relplot(data=data, x=x, y=y, hue="group", hue_order=sorted(data["group"].unique()), col=TASK,
                       col_wrap=min(n_envs, 3), kind="line", errorbar="sd", marker="o", markersize=3,
                       markeredgewidth=0, height=3.2, aspect=1.4, facet_kws={"sharey": False, "sharex": False})
    grid.set_titles("{col_name}").set_axis_labels(x.replace("_", " "), y)
    for ax in grid.axes.flat:
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:g}k" if abs(v) >= 1000 else f"{v:g}")  # 200k
        ax.grid(alpha=0.3)
    if title:
        grid.figure.suptitle(textwrap.fill(title, 45 * min(n_envs, 3)), y=1.0, va="bottom")  # above the panels
    return grid.figure


def build_report(args: argparse.Namespace) -> tuple[str, pd.DataFrame, object]:
    """report.md's text, the summary.csv table (one row per run) and the curves figure for parsed ``args``."""
    keys, metric = args.keys, args.metric
    runs = load_runs(args.dirs)
    runs["group"] = group_labels(runs, keys)
    if metric not in runs:
        if (runs["status"] == "finished").any():
            raise ReportError(f"--metric {metric!r} is in no run's summary.json; available: "
                              + ", ".join(sorted(c for c in runs.select_dtypes("number") if "." not in c)))
        runs[metric] = math.nan  # nothing has finished yet
    curves = load_curves(runs)
    base = metric.removeprefix("final_")  # final_eval_return ends eval_return_mean, final_eval_flip_rate eval_flip_rate
    y = next((c for c in (base, base + "_mean") if c in curves), "eval_return_mean")  # the curve --metric ends
    columns = ["run", *keys, "seed", "status", "error", "env_steps", "labels", metric]
    parts = [f"# {args.title}", f"Runs from {', '.join(f'`{d}`' for d in args.dirs)}: {len(runs)} ("
             + ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items()) + f"), grouped by `{args.by}`.",
             f"## {metric}", _aggregate_markdown(aggregate(runs, keys, metric, reps=args.reps), keys, args.relative_to),
             "Statistics over finished runs only (`n`: those with a value); the others are counted by status here "
             "and listed under Runs. std over runs; IQM with a 95% stratified-bootstrap CI "
             f"(rliable, {args.reps} resamples)."]
    if args.at is not None:
        at = f"{y}@{args.at}"
        runs[at] = runs["run"].map(curves[curves["env_step"] == args.at].groupby("run")[y].last())
        columns.append(at)
        parts += [f"## {y} at env step {args.at}", _aggregate_markdown(
                  aggregate(runs, keys, at, finished_only=False, reps=args.reps), keys, args.relative_to),
                  f"Over every run with an evaluation at env step {args.at} (`n`), finished or not."]
    compared = [metric]
    if args.last is not None:
        last = f"{y}_last{args.last}"
        runs[last] = runs["run"].map(last_evaluations(curves, y, args.last))
        columns.append(last)
        compared.append(last)
        parts += [f"## {y}, mean of the last {args.last} evaluations", _aggregate_markdown(
                  aggregate(runs, keys, last, reps=args.reps), keys, args.relative_to),
                  f"Each finished run's mean over its last {args.last} evaluations (`n`: runs with that many)."]
    for (a, b), score in ((pair, score) for pair in args.compare or [] for score in compared):
        poi = probability_of_improvement(runs, a, b, score, reps=args.reps)
        parts += [f"## Probability of improvement: {a} over {b}" + (f", on {score}" if len(compared) > 1 else ""),
                  markdown(poi) if len(poi) else "No finished runs of both yet.",
                  f"P(A > B): the probability that a finished run of A has a higher `{score}` than one of B "
                  "(ties count half), with its 95% stratified-bootstrap CI (rliable)."]
    table = runs[[c for c in dict.fromkeys([*columns, *TIMES])
                  if c in runs and (c in ("run", "error") or runs[c].notna().any())]]
    x_name = "labels used" if args.x == "labels" else "env steps"
    parts += [f"## {y} vs {x_name}", f"![{y} vs {x_name}, mean ± std over runs](curves.png)",
              "## Runs", markdown(table)]
    return "\n\n".join(parts) + "\n", table, plot_curves(curves, args.x, y, args.title)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments of ``pbrl-report``."""
    parser = argparse.ArgumentParser(prog=PROG, description="Aggregate pbrl-train runs into report.md, summary.csv "
                                     "and curves.png. A GROUP is KEY=VALUE[,KEY=VALUE], as the curves' legend names "
                                     "groups (e.g. tag=pebble, task=Hopper-v5,tag=sac): it selects every run that "
                                     "matches, with any column of the runs table as a KEY.")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="directories searched for runs (recursively)")
    parser.add_argument("--by", default=TASK, help="comma-separated dotted config or summary keys to group "
                        "runs by (default: task, the env.id and for Meta-World its env.kwargs.env_name)")
    parser.add_argument("--metric", default="final_eval_return", help="summary key to aggregate over finished runs; "
                        "the curves show the metrics.csv column it ends (final_eval_flip_rate: eval_flip_rate)")
    parser.add_argument("--x", choices=("env_step", "labels"), default="env_step",
                        help="x axis: env steps, or labels used so far (runs that ask none are left out)")
    parser.add_argument("--at", type=int, metavar="STEP", help="also aggregate the curves' metric at env step STEP "
                        "(every run with an evaluation there, finished or not)")
    parser.add_argument("--last", type=int, metavar="K", help="also aggregate each finished run's mean of the "
                        "curves' metric over its last K evaluations, a steadier end point than the final one; "
                        "--compare compares on it too")
    parser.add_argument("--relative-to", metavar="GROUP", help="add each median and mean as a percentage of "
                        "GROUP's (of the same task or env.id when grouped by it), e.g. tag=sac")
    parser.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"), help="probability that a "
                        "finished run of GROUP A beats one of GROUP B on --metric, per task, e.g. --compare "
                        "tag=pebble tag=sac (repeatable)")
    parser.add_argument("--out", help="output directory (default: the first DIR; created if missing)")
    parser.add_argument("--title", default="pbrl report", help="title of report.md and curves.png")
    parser.add_argument("--reps", type=int, default=REPS, help=f"bootstrap resamples for the CIs (default: {REPS})")
    args = parser.parse_args(argv)
    args.keys = [k.strip() for k in args.by.split(",") if k.strip()]
    if not args.keys:
        parser.error("--by: give at least one config key, e.g. --by task,precision")
    if args.reps < 1:
        parser.error("--reps: must be >= 1")
    if args.last is not None and args.last < 1:
        parser.error("--last: must be >= 1 (evaluations per run)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: writes the report's three files and prints it; bad input exits 2 in one line."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none opened
    import matplotlib.pyplot as plt

    args = parse_args(argv)
    out = Path(args.out if args.out is not None else args.dirs[0])
    try:
        text, table, figure = build_report(args)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.md").write_text(text)
            table.to_csv(out / "summary.csv", index=False)
            figure.savefig(out / "curves.png", dpi=90, bbox_inches="tight")  # modest dpi: the PNG stays small
            plt.close(figure)
        except OSError as exc:
            raise ReportError(f"cannot write to {out}: {exc}") from None
        print(text + f"\nwrote {out / 'report.md'}, {out / 'curves.png'}, {out / 'summary.csv'}")
    except ReportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except BrokenPipeError:  # `pbrl-report runs | head`: the reader left; the files are written
        sys.stdout = open(os.devnull, "w")  # so that the interpreter's final flush stays quiet
        raise SystemExit(0) from None


if __name__ == "__main__":
    main()
