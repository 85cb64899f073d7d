"""Tests for ``pbrl/report.py`` (``pbrl-report``) on fake run directories with known numbers."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pbrl import report

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs_dir(tmp_path: Path, fake_run) -> Path:
    """A sweep of 7 runs: Pendulum fp32 x3 and bf16 x2, Hopper fp32 x1 finished + 1 unfinished."""
    root = tmp_path / "runs"
    for seed, final in enumerate([-150.0, -160.0, -140.0]):
        fake_run(root / f"pendulum/precision=fp32,seed={seed}", "Pendulum-v1", seed,
                 [-1200.0, -600.0, final], precision="fp32", steps_per_s=100.0 + 10 * seed)
    for seed, final in enumerate([-200.0, -220.0]):
        fake_run(root / f"pendulum/precision=bf16,seed={seed}", "Pendulum-v1", seed,
                 [-1300.0, -700.0, final], precision="bf16", steps_per_s=200.0)
    fake_run(root / "hopper/precision=fp32,seed=0", "Hopper-v5", 0, [300.0, 900.0, 2100.0], steps_per_s=50.0)
    fake_run(root / "hopper/precision=fp32,seed=1", "Hopper-v5", 1, [250.0, 800.0], finished=False)
    (root / "pendulum/multirun.yaml").write_text("hydra: {}\n")  # sweep files are not runs
    return root


def _row(table, **keys) -> dict:
    mask = True
    for key, value in keys.items():
        mask = mask & (table[key] == value)
    rows = table[mask]
    assert len(rows) == 1, f"expected one row for {keys}"
    return rows.iloc[0].to_dict()


def test_find_runs_counts_finished_and_unfinished(runs_dir: Path):
    runs = report.load_runs([runs_dir])
    assert len(runs) == 7
    assert sum(not r.finished for r in runs) == 1
    unfinished = next(r for r in runs if not r.finished)
    assert unfinished.rel == "hopper/precision=fp32,seed=1"
    assert unfinished.last_eval_step == 2000


def test_group_by_two_keys(runs_dir: Path):
    groups = report.group_runs(report.load_runs([runs_dir]), ["env.id", "precision"])
    sizes = {key: len(runs) for key, runs in groups.items()}
    assert sizes == {("Hopper-v5", "fp32"): 2, ("Pendulum-v1", "bf16"): 2, ("Pendulum-v1", "fp32"): 3}


def test_group_by_a_summary_key_such_as_the_precision_used(tmp_path: Path, fake_run):
    """``precision: auto`` resolves per machine: the precision a run used is in its summary.json, not its config."""
    import json

    for seed, used in enumerate(["fp32", "fp32", "bf16"]):
        run = fake_run(tmp_path / f"auto/seed={seed}", "Pendulum-v1", seed, [-900.0, -300.0], precision="auto")
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps(summary | {"precision_used": used}))
    groups = report.group_runs(report.load_runs([tmp_path / "auto"]), ["precision", "precision_used"])
    assert {key: len(runs) for key, runs in groups.items()} == {("auto", "bf16"): 1, ("auto", "fp32"): 2}
    with pytest.raises(report.ReportError):
        report.group_runs(report.load_runs([tmp_path / "auto"]), ["precision_usd"])


def test_a_key_some_runs_lack_groups_them_under_none(runs_dir: Path, tmp_path: Path, fake_run):
    """Runs from before a setting existed lack its key: they form their own group instead of an error."""
    newer = fake_run(tmp_path / "newer", "Hopper-v5", 0, [1.0, 2.0])
    config = yaml.safe_load((newer / "config.yaml").read_text())
    config["reward_model"] = {"output": "linear"}
    (newer / "config.yaml").write_text(yaml.safe_dump(config))
    groups = report.group_runs(report.load_runs([runs_dir, newer]), ["env.id", "reward_model.output"])
    assert {k: len(v) for k, v in groups.items()} == {("Hopper-v5", None): 2, ("Hopper-v5", "linear"): 1,
                                                      ("Pendulum-v1", None): 5}


def test_aggregate_matches_hand_computed_numbers(runs_dir: Path):
    keys = ["env.id", "precision"]
    groups = report.group_runs(report.load_runs([runs_dir]), keys)
    table = report.aggregate(groups, keys, "final_eval_return", reps=200)

    fp32 = _row(table, **{"env.id": "Pendulum-v1", "precision": "fp32"})
    assert fp32["n"] == 3 and fp32["unfinished"] == 0
    assert fp32["mean"] == pytest.approx(-150.0)
    assert fp32["std"] == pytest.approx(10.0)  # sample std of -150, -160, -140
    assert (fp32["min"], fp32["max"]) == (-160.0, -140.0)
    assert fp32["iqm"] == pytest.approx(-150.0)  # 3 runs: 25% trimming drops none
    assert fp32["iqm_low"] <= fp32["iqm"] <= fp32["iqm_high"]
    assert fp32["steps_per_s"] == pytest.approx(110.0)
    assert fp32["wall_time_s"] == pytest.approx(sum(3000 / s for s in (100.0, 110.0, 120.0)) / 3)

    bf16 = _row(table, **{"env.id": "Pendulum-v1", "precision": "bf16"})
    assert bf16["mean"] == pytest.approx(-210.0)
    assert bf16["std"] == pytest.approx(math.sqrt(200.0))

    hopper = _row(table, **{"env.id": "Hopper-v5", "precision": "fp32"})
    assert hopper["n"] == 1 and hopper["unfinished"] == 1
    assert hopper["unfinished_steps"] == [2000]
    assert hopper["mean"] == pytest.approx(2100.0) and math.isnan(hopper["std"])
    assert hopper["iqm"] == pytest.approx(2100.0) and math.isnan(hopper["iqm_low"])  # n=1: no CI


def test_iqm_drops_the_outer_quartiles():
    iqm, low, high = report.iqm_with_ci([1.0, 2.0, 3.0, 100.0], reps=200)
    assert iqm == pytest.approx(2.5)  # mean of the middle two
    assert low <= iqm <= high


def test_curve_table_has_mean_and_std_per_step(runs_dir: Path):
    groups = report.group_runs(report.load_runs([runs_dir]), ["env.id", "precision"])
    table = report.curve_table(groups)
    assert list(table.index) == [1000, 2000, 3000]
    assert table.loc[1000, "Pendulum-v1 / fp32"] == "-1200.0 ± 0"
    assert table.loc[2000, "Hopper-v5 / fp32"] == "850.0 ± 70.7"  # both Hopper runs, the unfinished one too
    assert table.loc[3000, "Hopper-v5 / fp32"] == "2100.0"  # one run there: no std


def test_cli_writes_report_curves_and_summary(runs_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "new" / "report"  # created, parents included
    report.main([str(runs_dir), "--by", "env.id,precision", "--out", str(out),
                 "--title", "Fake sweep", "--reps", "200"])
    printed = capsys.readouterr().out

    assert "| env.id" in printed and "| precision" in printed
    assert "IQM [95% CI]" in printed
    assert "2100.0 [n=1]" in printed
    assert "1 (at 2000)" in printed  # unfinished count and its last eval step
    assert "`hopper/precision=fp32,seed=1`: last eval at step 2000" in printed
    assert "Eval return vs env steps" in printed

    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# Fake sweep")
    assert markdown in printed
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    assert set(rows[0]) >= {"run", "env.id", "precision", "seed", "final_eval_return", "env_steps", "steps_per_s"}
    hopper0 = next(r for r in rows if r["run"] == "hopper/precision=fp32,seed=0")
    assert float(hopper0["final_eval_return"]) == 2100.0 and hopper0["env_steps"] == "3000"


def test_default_out_is_the_first_dir(runs_dir: Path, capsys):
    report.main([str(runs_dir / "hopper"), "--reps", "50"])
    assert (runs_dir / "hopper" / "report.md").is_file()
    assert (runs_dir / "hopper" / "curves.png").is_file()


def _corrupt_summary(root: Path) -> str:
    (root / "pendulum/precision=fp32,seed=0/summary.json").write_text("{not json")
    return "precision=fp32,seed=0/summary.json"


def _corrupt_metrics(root: Path) -> str:
    (root / "pendulum/precision=bf16,seed=1/metrics.csv").write_text("")
    return "precision=bf16,seed=1/metrics.csv"


@pytest.mark.parametrize("case", ["missing_dir", "no_runs", "corrupt_summary", "corrupt_metrics",
                                  "missing_by_key", "unknown_metric"])
def test_errors_exit_2_without_traceback(case: str, runs_dir: Path, tmp_path: Path):
    args, expected = [str(runs_dir)], None
    if case == "missing_dir":
        args, expected = [str(tmp_path / "nope")], "directory not found"
    elif case == "no_runs":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        args, expected = [str(tmp_path / "empty")], "no runs found below"
    elif case == "corrupt_summary":
        expected = _corrupt_summary(runs_dir)
    elif case == "corrupt_metrics":
        expected = _corrupt_metrics(runs_dir)
    elif case == "missing_by_key":
        args, expected = [str(runs_dir), "--by", "env.id,agent.lr"], "'agent.lr'"
    elif case == "unknown_metric":
        args, expected = [str(runs_dir), "--metric", "nope"], "'nope'"

    proc = subprocess.run([sys.executable, "-m", "pbrl.report", *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("pbrl-report: error:")
    assert expected in proc.stderr
