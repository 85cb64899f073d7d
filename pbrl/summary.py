"""summary.json: a finished run's final numbers and where they came from (versions, commit)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

import pbrl
from pbrl.lifecycle import write_text

FLIP_KEYS = ("eval_rotations_mean", "eval_flip_rate", "eval_landed_rate", "eval_landed_mean")


def git_commit() -> str | None:
    """The commit of the pbrl checkout that ran (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(pbrl.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_summary(path: Path, run: Mapping[str, Any], eval_rows: Sequence[Mapping[str, Any]],
                  feedback: Mapping[str, Any]) -> dict:
    """Write ``path`` atomically: ``run``'s fields, the final/best evaluation, versions, the reward side's numbers."""
    import gymnasium
    import mujoco
    import torch

    last = eval_rows[-1] if eval_rows else {}
    summary = {**run,
               "final_eval_return": last.get("eval_return_mean"),
               "best_eval_return": max(r["eval_return_mean"] for r in eval_rows) if eval_rows else None,
               "final_eval_return_std": last.get("eval_return_std"),
               "pbrl_version": pbrl.__version__, "git_commit": git_commit(), "torch_version": torch.__version__,
               "gymnasium_version": gymnasium.__version__, "mujoco_version": mujoco.__version__, **feedback}
    if "eval_learned_return_mean" in last:
        summary["final_eval_learned_return"] = last["eval_learned_return_mean"]
    summary.update({f"final_{k}": last[k] for k in (*FLIP_KEYS, "eval_success_rate") if k in last})
    # strict JSON: a metric that is not defined yet (NaN) is written as null
    summary = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
    write_text(path, json.dumps(summary, indent=2) + "\n")
    return summary
