"""One logger for a run: CSV always, TensorBoard optionally, wandb when asked.

``metrics.csv`` holds one row per evaluation, ``episodes.csv`` one row per training episode and,
in preference mode, ``rounds.csv`` one row per feedback round.
Rows live in memory and the files are rewritten whole, so a resumed run (which restores the rows
from its snapshot) never carries duplicate or orphaned rows past the snapshot step.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Mapping

from pbrl.errors import check_choice
from pbrl.lifecycle import write_text

WANDB_MODES = ("disabled", "offline", "online")


def wandb_run_id(run_dir: Path) -> str:
    """The wandb run id of a run folder: a resumed or requeued run continues the same wandb run."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]


def write_config(run_dir: Path, cfg: Mapping[str, Any]) -> None:
    """``config.yaml``: the resolved settings a run uses (pbrl-report groups runs by them)."""
    from omegaconf import OmegaConf

    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(dict(cfg))))


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


class Logger:
    """Writes scalars of a run to CSV, TensorBoard and wandb."""

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any], tensorboard: bool = True,
                 wandb: Mapping[str, Any] | None = None, resume_step: int = 0):
        self.run_dir = Path(run_dir)
        self.eval_rows: list[dict] = []
        self.episode_rows: list[dict] = []
        self.round_rows: list[dict] = []
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last snapshot
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step or None)
        self._wandb = None
        wandb = dict(wandb or {})
        mode = wandb.get("mode", "disabled")
        check_choice("logger.wandb.mode", mode, WANDB_MODES)
        if mode != "disabled":
            self._wandb = self._init_wandb(mode, wandb, config)

    def _init_wandb(self, mode: str, wcfg: dict, config: Mapping[str, Any]):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        return wandb.init(project=wcfg.get("project") or "pbrl", entity=wcfg.get("entity"), group=wcfg.get("group"),
                          name=wcfg.get("name") or self.run_dir.name, tags=[str(t)[:64] for t in wcfg.get("tags") or []],
                          mode=mode, id=wandb_run_id(self.run_dir), resume="allow", dir=str(self.run_dir),
                          config=dict(config))

    def log(self, prefix: str, step: int, metrics: Mapping[str, float]) -> None:
        """Send scalars to TensorBoard and wandb as ``prefix/name`` at env step ``step``."""
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{prefix}/{k}", v, step)
        if self._wandb is not None:
            self._wandb.log({f"{prefix}/{k}": v for k, v in metrics.items()}, step=step)

    def log_episode(self, row: Mapping[str, float]) -> None:
        """One training episode (``env_step``, ``episode``, ``return``, ``length``...)."""
        self.episode_rows.append(dict(row))
        self.log("train", int(row["env_step"]), {k: v for k, v in row.items() if k != "env_step"})

    def log_round(self, row: Mapping[str, float]) -> None:
        """One feedback round (``env_step``, labels, reward-model statistics, timings); written at once."""
        self.round_rows.append(dict(row))
        self.log("feedback", int(row["env_step"]), {k: v for k, v in row.items() if k != "env_step"})
        self.flush()

    def log_eval(self, row: Mapping[str, float]) -> None:
        """One evaluation row of metrics.csv; writes the CSV files at once."""
        self.eval_rows.append(dict(row))
        self.log("eval", int(row["env_step"]), {k: v for k, v in row.items() if k != "env_step"})
        self.flush()

    def flush(self) -> None:
        """Rewrite metrics.csv and episodes.csv from memory."""
        for name, rows in (("metrics.csv", self.eval_rows), ("episodes.csv", self.episode_rows),
                           ("rounds.csv", self.round_rows)):
            path = self.run_dir / name
            if rows:
                _write_csv(path, rows)
            elif path.exists():  # rows written after the snapshot we resumed from
                path.unlink()
        if self._tb is not None:
            self._tb.flush()

    def state_dict(self) -> dict:
        """The rows written so far, for snapshots."""
        return {"eval_rows": list(self.eval_rows), "episode_rows": list(self.episode_rows),
                "round_rows": list(self.round_rows)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the rows of a snapshot and rewrite the CSV files to match it."""
        self.eval_rows = list(state["eval_rows"])
        self.episode_rows = list(state["episode_rows"])
        self.round_rows = list(state.get("round_rows", []))
        self.flush()

    def close(self) -> None:
        """Flush and close every sink."""
        self.flush()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
