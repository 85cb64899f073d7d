"""``pbrl-report``: aggregate finished and running ``pbrl-train`` runs into tables and plots.

A run is a folder holding ``summary.json`` (written when the run finished) or ``metrics.csv`` and
``config.yaml`` (a run still going, or one that was stopped). Runs are grouped by dotted config
keys (``--by env.id,precision``), or summary.json keys (``--by precision_used``), and each group is summarised by mean, std and the interquartile
mean (IQM) with a 95% stratified-bootstrap confidence interval from ``rliable``
(Agarwal et al., 2021, "Deep RL at the Edge of the Statistical Precipice").

Usage::

    pbrl-report runs/sac_baseline [more dirs] [--by env.id,precision] [--metric final_eval_return]
                [--out OUTDIR] [--title TEXT]

Writes ``OUTDIR/report.md`` (the printed tables), ``OUTDIR/curves.png`` (eval return vs env steps,
mean ± std per group, one subplot per env) and ``OUTDIR/summary.csv`` (one row per run). Bad input
ends with ``pbrl-report: error: <what is wrong>`` and exit status 2, never a traceback.

The functions ``find_runs``, ``load_run``, ``load_runs``, ``group_runs``, ``aggregate``,
``curve_table`` and ``plot_curves`` are the public API, used by ``notebooks/analysis.ipynb``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

PROG = "pbrl-report"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
CONFIG = "config.yaml"
NO_VALUE = "—"  # what an empty table cell shows


class ReportError(Exception):
    """Bad input (missing directory, corrupt file, unknown key); ``main`` prints it in one line."""


@dataclass
class Run:
    """One run directory, loaded.

    ``rel`` is its path relative to the directory it was found below (the name shown in tables).
    ``summary`` is None while the run has not finished. ``metrics`` holds one row per evaluation
    (possibly none) with at least the columns ``env_step`` and ``eval_return_mean``.
    """

    path: Path
    rel: str
    config: dict
    summary: dict | None
    metrics: pd.DataFrame

    @property
    def finished(self) -> bool:
        """Whether the run wrote its summary.json (only finished runs count in the statistics)."""
        return self.summary is not None

    @property
    def last_eval_step(self) -> int | None:
        """The env step of the last evaluation in metrics.csv, None if there is none yet."""
        return int(self.metrics["env_step"].iloc[-1]) if len(self.metrics) else None

    @property
    def env_id(self) -> str:
        """The environment id, from config.yaml, else summary.json."""
        value = select(self.config, "env.id")
        if value is None and self.summary is not None:
            value = self.summary.get("env_id")
        return str(value) if value is not None else "?"

    @property
    def seed(self) -> Any:
        """The seed, from config.yaml, else summary.json."""
        value = select(self.config, "seed")
        if value is None and self.summary is not None:
            value = self.summary.get("seed")
        return value

    @property
    def env_steps(self) -> int | None:
        """Env steps done: the summary's count, or the last evaluation step of an unfinished run."""
        if self.summary is not None and self.summary.get("env_steps") is not None:
            return int(self.summary["env_steps"])
        return self.last_eval_step

    @property
    def steps_per_s(self) -> float:
        """Whole-run throughput: the summary's, or the latest ``steps_per_s`` in metrics.csv."""
        if self.summary is not None:
            return _as_float(self.summary.get("steps_per_s"))
        if len(self.metrics) and "steps_per_s" in self.metrics:
            return _as_float(self.metrics["steps_per_s"].iloc[-1])
        return math.nan

    def metric(self, name: str) -> float:
        """A summary.json value as a float (NaN for an unfinished run or a null value)."""
        if self.summary is None:
            return math.nan
        if name not in self.summary:
            raise ReportError(f"{self.path / SUMMARY} has no key {name!r} for --metric; "
                              f"available: {', '.join(sorted(self.summary))}")
        value = self.summary[name]
        if value is None:  # a run that finished before its first evaluation
            return math.nan
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ReportError(f"{self.path / SUMMARY}: {name!r} is {value!r}, not a number") from None


_MISSING = object()


def select(config: dict, key: str, default: Any = None) -> Any:
    """Look up a dotted key (``env.id``) in a nested dict, like ``OmegaConf.select``."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


# ------------------------------------------------------------------------------------ loading


def find_runs(root: str | Path) -> list[Path]:
    """All run directories at or below ``root``, sorted.

    A run directory holds ``summary.json``, or ``metrics.csv`` beside ``config.yaml``.
    Raises ReportError when ``root`` is missing or holds no run.
    """
    root = Path(root)
    if not root.exists():
        raise ReportError(f"directory not found: {root}")
    if not root.is_dir():
        raise ReportError(f"not a directory: {root}")
    found = {p.parent for p in root.rglob(SUMMARY)}
    found |= {p.parent for p in root.rglob(METRICS) if (p.parent / CONFIG).is_file()}
    if not found:
        raise ReportError(f"no runs found below {root}: expected folders with {SUMMARY} or {METRICS}")
    return sorted(found)


def _read_config(path: Path) -> dict:
    from omegaconf import OmegaConf

    try:
        container = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # yaml.YAMLError and OmegaConf errors have no common base
        one_line = " ".join(str(exc).split())  # YAML messages span lines; the CLI prints one
        raise ReportError(f"cannot read {path}: {one_line}") from None
    if not isinstance(container, dict):
        raise ReportError(f"cannot read {path}: expected a mapping at the top level")
    return container


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(summary, dict):
        raise ReportError(f"cannot read {path}: expected a JSON object")
    return summary


def _read_metrics(path: Path) -> pd.DataFrame:
    try:
        metrics = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    missing = [c for c in ("env_step", "eval_return_mean") if c not in metrics.columns]
    if missing:
        raise ReportError(f"cannot read {path}: missing column(s) {', '.join(missing)}")
    for column in ("env_step", "eval_return_mean"):
        if len(metrics) and not pd.api.types.is_numeric_dtype(metrics[column]):
            raise ReportError(f"cannot read {path}: column {column} is not numeric")
    return metrics.sort_values("env_step", kind="stable").reset_index(drop=True)


def load_run(path: str | Path, root: str | Path | None = None) -> Run:
    """Load one run directory; ``root`` (default: its parent) sets the relative name ``Run.rel``."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    rel = path.relative_to(root).as_posix() if path != root else path.resolve().name
    config = _read_config(path / CONFIG) if (path / CONFIG).is_file() else {}
    summary = _read_summary(path / SUMMARY) if (path / SUMMARY).is_file() else None
    if (path / METRICS).is_file():
        metrics = _read_metrics(path / METRICS)
    else:  # a run that finished without evaluating still counts in the statistics
        metrics = pd.DataFrame({"env_step": pd.Series(dtype=int), "eval_return_mean": pd.Series(dtype=float)})
    return Run(path=path, rel=rel, config=config, summary=summary, metrics=metrics)


def load_runs(dirs: Sequence[str | Path]) -> list[Run]:
    """Find and load the runs below each directory; with several, names are prefixed by the directory."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for root in map(Path, dirs):
        for path in find_runs(root):
            if path.resolve() in seen:  # overlapping arguments (runs and runs/sac) list a run once
                continue
            seen.add(path.resolve())
            run = load_run(path, root)
            if len(dirs) > 1:
                run.rel = (root / run.rel).as_posix() if path != root else root.as_posix()
            runs.append(run)
    return runs


# ---------------------------------------------------------------------------------- grouping


def group_runs(runs: Sequence[Run], keys: Sequence[str]) -> dict[tuple, list[Run]]:
    """Group runs by the values of dotted config keys; groups are sorted by those values.

    A key that no run's config holds is a ReportError naming it (most likely a typo). A key that
    only some runs lack (runs from before that setting existed) groups those runs under None.
    """
    for key in keys:
        if runs and all(_lookup(run, key) is _MISSING for run in runs):
            run = runs[0]
            raise ReportError(f"--by key {key!r} is missing from the config of run {run.rel} "
                              f"({run.path / CONFIG}), from its summary.json, and from every other run's")
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        values = tuple(None if (v := _lookup(run, key)) is _MISSING else v for key in keys)
        groups.setdefault(values, []).append(run)
    # str(): values of one key may mix types (None beside "fp32"), which tuples cannot compare
    return dict(sorted(groups.items(), key=lambda kv: tuple(str(v) for v in kv[0])))


def _lookup(run: Run, key: str):
    """A dotted config key's value, else a summary.json key's (``precision_used``), else _MISSING."""
    value = select(run.config, key, default=_MISSING)
    if value is _MISSING and run.summary is not None:
        value = run.summary.get(key, _MISSING)
    return value


def group_label(values: tuple) -> str:
    """The short name of a group: its key values joined by ' / '."""
    return " / ".join(str(v) for v in values)


# ------------------------------------------------------------------------------- statistics


def iqm_with_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """IQM of per-run scores and its 95% stratified-bootstrap CI (rliable): ``(iqm, low, high)``.

    The group is one task, so the stratified bootstrap resamples runs. With fewer than two runs
    there is nothing to resample: the CI is returned as NaN.
    """
    from rliable import library as rly
    from rliable import metrics as rl_metrics

    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        return math.nan, math.nan, math.nan
    iqm = float(rl_metrics.aggregate_iqm(scores[:, None]))
    if len(scores) < 2:
        return iqm, math.nan, math.nan
    with warnings.catch_warnings():
        # rliable hands random_state to arch, which warns that the argument is deprecated
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arch\.")
        _, intervals = rly.get_interval_estimates(
            {"group": scores[:, None]},  # [num_runs, num_tasks=1]
            lambda x: np.array([rl_metrics.aggregate_iqm(x)]),
            reps=reps,
            random_state=np.random.RandomState(seed),  # the same CI on every call
        )
    low, high = intervals["group"][:, 0]
    return iqm, float(low), float(high)


def aggregate(groups: dict[tuple, list[Run]], keys: Sequence[str], metric: str = "final_eval_return",
              reps: int = 2000) -> pd.DataFrame:
    """One row per group: key values, finished-run statistics of ``metric``, throughput.

    Columns: the keys, ``n`` (finished runs), ``unfinished`` (count), ``unfinished_steps`` (their
    last eval steps), ``mean``, ``std`` (sample std, ddof=1; NaN for n=1), ``iqm``, ``iqm_low``,
    ``iqm_high``, ``min``, ``max``, ``steps_per_s`` and ``wall_time_s`` (means over finished runs).
    """
    rows = []
    for values, runs in groups.items():
        finished = [r for r in runs if r.finished]
        scores = np.array([r.metric(metric) for r in finished], dtype=float)
        valid = scores[np.isfinite(scores)]
        iqm, low, high = iqm_with_ci(valid, reps=reps)
        wall = [_as_float(r.summary.get("wall_time_s")) for r in finished]
        rows.append({
            **dict(zip(keys, values)),
            "n": len(finished),
            "unfinished": len(runs) - len(finished),
            "unfinished_steps": [r.last_eval_step for r in runs if not r.finished],
            "mean": float(valid.mean()) if len(valid) else math.nan,
            "std": float(valid.std(ddof=1)) if len(valid) > 1 else math.nan,
            "iqm": iqm, "iqm_low": low, "iqm_high": high,
            "min": float(valid.min()) if len(valid) else math.nan,
            "max": float(valid.max()) if len(valid) else math.nan,
            "steps_per_s": _nanmean([r.steps_per_s for r in finished]),
            "wall_time_s": _nanmean(wall),
        })
    return pd.DataFrame(rows)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):  # null or a string in a hand-edited summary
        return math.nan


def _nanmean(values: Sequence[float]) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def curve_stats(runs: Sequence[Run]) -> pd.DataFrame:
    """Mean, std (ddof=1) and run count of ``eval_return_mean`` at each env step, over ``runs``.

    Runs evaluated at different steps are averaged per step over the runs that have that step.
    """
    frames = [r.metrics[["env_step", "eval_return_mean"]] for r in runs if len(r.metrics)]
    if not frames:
        return pd.DataFrame(columns=["env_step", "mean", "std", "count"])
    stats = pd.concat(frames).groupby("env_step")["eval_return_mean"].agg(["mean", "std", "count"])
    return stats.reset_index()


def curve_table(groups: dict[tuple, list[Run]]) -> pd.DataFrame:
    """Eval return vs env steps: rows = every step seen, one ``mean ± std`` column per group."""
    columns = {}
    for values, runs in groups.items():
        stats = curve_stats(runs).set_index("env_step")
        columns[group_label(values)] = {
            int(step): _fmt(row["mean"]) + (f" ± {_fmt(row['std'])}" if row["count"] > 1 else "")
            for step, row in stats.iterrows()
        }
    table = pd.DataFrame(columns).sort_index().fillna("")
    table.index.name = "env_step"
    return table


# ---------------------------------------------------------------------------------- tables


def _fmt(x: Any) -> str:
    """A number for a table: one decimal from 10 up, three significant digits below."""
    if x is None:
        return NO_VALUE
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return NO_VALUE
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; numeric columns are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    numeric = [bool(cells) and all(_is_number_cell(row[i]) for row in cells) for i in range(len(header))]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]

    def line(items: Sequence[str]) -> str:
        padded = [s.rjust(w) if num else s.ljust(w) for s, w, num in zip(items, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule] + [line(row) for row in cells])


def _is_number_cell(text: str) -> bool:
    head = text.split(" ")[0]
    try:
        float(head)
        return True
    except ValueError:
        return text in ("", NO_VALUE)


def aggregate_markdown(table: pd.DataFrame, keys: Sequence[str], metric: str) -> str:
    """The aggregate table as markdown: one row per group."""
    header = [*keys, "n", "unfinished", f"{metric} mean", "std", "IQM [95% CI]", "min", "max",
              "steps/s", "wall time (s)"]
    rows = []
    for _, row in table.iterrows():
        if row["n"] >= 2 and math.isfinite(row["iqm_low"]):
            iqm = f"{_fmt(row['iqm'])} [{_fmt(row['iqm_low'])}, {_fmt(row['iqm_high'])}]"
        elif math.isfinite(row["iqm"]):
            iqm = f"{_fmt(row['iqm'])} [n=1]"  # one run: no spread to bootstrap
        else:
            iqm = NO_VALUE
        steps = row["unfinished_steps"]
        unfinished = "0" if not steps else f"{len(steps)} (at {', '.join(_fmt(s) for s in steps)})"
        rows.append([*(str(row[k]) for k in keys), row["n"], unfinished, _fmt(row["mean"]),
                     _fmt(row["std"]), iqm, _fmt(row["min"]), _fmt(row["max"]),
                     _fmt(row["steps_per_s"]), _fmt(row["wall_time_s"])])
    return markdown_table(header, rows)


def curve_markdown(table: pd.DataFrame) -> str:
    """The eval-return-vs-steps table as markdown."""
    rows = [[str(step), *row] for step, row in zip(table.index, table.itertuples(index=False))]
    return markdown_table(["env_step", *table.columns], rows)


def run_table(groups: dict[tuple, list[Run]], keys: Sequence[str], metric: str) -> pd.DataFrame:
    """One row per run (the content of summary.csv)."""
    rows = []
    for values, members in groups.items():
        for run in members:
            rows.append({"run": run.rel, **dict(zip(keys, values)), "seed": run.seed,
                         "finished": run.finished, metric: run.metric(metric),
                         "env_steps": run.env_steps, "steps_per_s": run.steps_per_s})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- plotting


def plot_curves(groups: dict[tuple, list[Run]], title: str | None = None):
    """Eval return vs env steps: mean line and ±std band per group, one subplot per env.id.

    Each env gets its own axes because return scales differ between envs. Returns the figure.
    """
    import matplotlib.pyplot as plt

    envs = sorted({run.env_id for runs in groups.values() for run in runs})
    ncols = min(len(envs), 3)
    nrows = math.ceil(len(envs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4 * nrows), squeeze=False)
    for ax, env in zip(axes.flat, envs):
        for values, runs in groups.items():
            stats = curve_stats([r for r in runs if r.env_id == env])
            if stats.empty:
                continue
            n_runs = sum(r.env_id == env for r in runs)
            steps, mean = stats["env_step"].to_numpy(), stats["mean"].to_numpy(dtype=float)
            std = stats["std"].fillna(0.0).to_numpy(dtype=float)  # one run at a step: no band
            # markers: a run with a single evaluation so far would otherwise draw nothing
            (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=f"{group_label(values)} (n={n_runs})")
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}")  # 200k, not 200000
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(envs):]:
        ax.set_visible(False)
    if title:  # wrapped to the figure's width (about 10 characters per inch at the default size)
        fig.suptitle(textwrap.fill(title, width=int(10 * 5.5 * ncols)))
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- CLI


def build_report(runs: Sequence[Run], keys: Sequence[str], metric: str, title: str,
                 sources: Sequence[str], reps: int = 2000) -> tuple[str, dict[tuple, list[Run]], pd.DataFrame]:
    """The markdown report for ``runs``; also returns the groups and the aggregate table."""
    groups = group_runs(runs, keys)
    table = aggregate(groups, keys, metric, reps=reps)
    finished = sum(r.finished for r in runs)
    parts = [
        f"# {title}",
        f"Runs from {', '.join(f'`{s}`' for s in sources)}: {len(runs)} found, {finished} finished, "
        f"{len(runs) - finished} unfinished. Grouped by `{','.join(keys)}`; statistics of `{metric}` "
        "over finished runs (std: sample std over runs; IQM: interquartile mean with a 95% "
        "stratified-bootstrap CI from rliable).",
        "## Aggregate",
        aggregate_markdown(table, keys, metric),
    ]
    unfinished = [r for r in runs if not r.finished]
    if unfinished:
        parts += ["Unfinished runs (in the curves, not in the statistics):",
                  "\n".join(f"- `{r.rel}`: last eval at step {_fmt(r.last_eval_step)}" for r in unfinished)]
    parts += ["## Eval return vs env steps",
              "Mean ± std over runs of `eval_return_mean` at each evaluation step "
              "(blank: no run of that group evaluated there).",
              curve_markdown(curve_table(groups)),
              "![eval return vs env steps](curves.png)"]
    return "\n\n".join(parts) + "\n", groups, table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments of ``pbrl-report``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Aggregate pbrl-train runs into report.md, curves.png and summary.csv.")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="directories searched for runs (recursively)")
    parser.add_argument("--by", default="env.id",
                        help="comma-separated dotted config keys to group runs by (default: env.id)")
    parser.add_argument("--metric", default="final_eval_return",
                        help="summary.json key to aggregate (default: final_eval_return)")
    parser.add_argument("--out", default=None, help="output directory (default: the first DIR; created if missing)")
    parser.add_argument("--title", default="pbrl report", help="title of report.md and curves.png")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples for the IQM CI (default: 2000)")
    args = parser.parse_args(argv)
    args.keys = [k.strip() for k in args.by.split(",") if k.strip()]
    if not args.keys:
        parser.error("--by: give at least one config key, e.g. --by env.id,precision")
    if args.reps < 1:
        parser.error("--reps: must be >= 1")
    return args


def report(args: argparse.Namespace) -> None:
    """Load, aggregate, print and write the report described by parsed ``args``."""
    runs = load_runs(args.dirs)
    markdown, groups, _ = build_report(runs, args.keys, args.metric, args.title, args.dirs, reps=args.reps)
    out = Path(args.out if args.out is not None else args.dirs[0])
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(markdown)
        run_table(groups, args.keys, args.metric).to_csv(out / "summary.csv", index=False)
        _save_plot(groups, args.title, out / "curves.png")
    except OSError as exc:
        raise ReportError(f"cannot write to {out}: {exc}") from None
    print(markdown, end="")
    print(f"\nwrote {out / 'report.md'}, {out / 'curves.png'}, {out / 'summary.csv'}")


def _save_plot(groups: dict[tuple, list[Run]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none opened
    import matplotlib.pyplot as plt

    fig = plot_curves(groups, title)
    try:
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: exit status 2 with a one-line message on bad input."""
    args = parse_args(argv)
    try:
        report(args)
    except ReportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except BrokenPipeError:  # `pbrl-report runs | head`: the reader left; the files are written
        sys.stdout = open(os.devnull, "w")  # so that the interpreter's final flush stays quiet
        raise SystemExit(0) from None


if __name__ == "__main__":
    main()
