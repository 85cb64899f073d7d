"""Shared plumbing of the experiment scripts: a resumable hydra multirun, then pbrl-report.

Each script is a thin wrapper: it names the sweep (overrides) and the folder it lives in. Rerunning
a script reruns the same multiruns into the same folders, so finished runs return at once and
interrupted ones resume from their snapshots.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pbrl  # noqa: F401  (its warning filter: conf/hydra/launcher/ takes the launcher plugins' names)

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"  # ignored by git: run directories, snapshots, videos
RESULTS = ROOT / "experiments" / "results"  # committed: tables and plots


def _rel(path: Path) -> str:
    """Paths relative to the repository root: nothing machine-specific ends up in committed reports."""
    return str(Path(path).resolve().relative_to(ROOT))


def multirun(sweep_dir: Path, overrides: list[str], n_jobs: int = 2) -> int:
    """``pbrl-train -m <overrides>`` into ``sweep_dir`` (one subfolder per override set)."""
    cmd = [sys.executable, "-m", "pbrl.train", "-m", *overrides, f"hydra.sweep.dir={_rel(sweep_dir)}",
           f"hydra.launcher.n_jobs={n_jobs}", "progress=false"]
    print("+", " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def report(dirs: list[Path], out: Path, by: str, title: str, metric: str | None = None,
           options: list[str] | None = None) -> int:
    """``pbrl-report <dirs> --by <keys> --out <out> [--metric <key>] [options]``: tables and plots, printed and saved.

    ``options`` are further pbrl-report flags, e.g. ``["--at", "200000", "--relative-to", "tag=sac"]``."""
    cmd = [sys.executable, "-m", "pbrl.report", *map(_rel, dirs), "--by", by, "--out", _rel(out), "--title", title,
           *(["--metric", metric] if metric else []), *(options or [])]
    print("+", " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


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
