"""Tests for ``pbrl/report.py`` (``pbrl-report``) on fake run directories with known numbers."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pbrl import report

REPO = Path(__file__).resolve().parent.parent


def _status(run: Path, status: str, error: str | None = None) -> Path:
    """Write the run.json ``pbrl-train`` keeps up to date (the fields the report reads, and a few more)."""
    (run / "run.json").write_text(json.dumps({"status": status, "error": error, "command": "pbrl-train seed=0",
                                              "host": "test", "cpu": "test cpu"}))
    return run


def _with_labels(run: Path, labels: list[int]) -> Path:
    """Add the ``labels`` column a preference run's metrics.csv has (labels used so far, per evaluation)."""
    metrics = pd.read_csv(run / "metrics.csv").assign(labels=labels)
    metrics.to_csv(run / "metrics.csv", index=False)
    return run


@pytest.fixture
def runs_dir(tmp_path: Path, fake_run) -> Path:
    """Pendulum fp32 x3 and bf16 x2 finished; Hopper fp32: 1 finished, 1 unfinished (no run.json), 1 failed."""
    root = tmp_path / "runs"
    for seed, final in enumerate([-150.0, -160.0, -140.0]):
        _status(fake_run(root / f"pendulum/precision=fp32,seed={seed}", "Pendulum-v1", seed,
                         [-1200.0, -600.0, final], precision="fp32", steps_per_s=100.0 + 10 * seed), "finished")
    for seed, final in enumerate([-200.0, -220.0]):  # no run.json: runs from before it existed
        fake_run(root / f"pendulum/precision=bf16,seed={seed}", "Pendulum-v1", seed,
                 [-1300.0, -700.0, final], precision="bf16", steps_per_s=200.0)
    fake_run(root / "hopper/precision=fp32,seed=0", "Hopper-v5", 0, [300.0, 900.0, 2100.0], steps_per_s=50.0)
    fake_run(root / "hopper/precision=fp32,seed=1", "Hopper-v5", 1, [250.0, 800.0], finished=False)
    _status(fake_run(root / "hopper/precision=fp32,seed=2", "Hopper-v5", 2, [200.0], finished=False),
            "failed", "RuntimeError: CUDA out of memory")
    (root / "pendulum/multirun.yaml").write_text("hydra: {}\n")  # sweep files are not runs
    return root


def _row(table: pd.DataFrame, **keys) -> dict:
    rows = table[(table[list(keys)] == pd.Series(keys)).all(axis=1)]
    assert len(rows) == 1, f"expected one row for {keys}"
    return rows.iloc[0].to_dict()


def test_load_runs_one_row_per_run_with_status_from_run_json_or_the_summary(runs_dir: Path):
    runs = report.load_runs([runs_dir]).set_index("run")
    assert len(runs) == 8
    assert runs["status"].value_counts().to_dict() == {"finished": 6, "unfinished": 1, "failed": 1}
    failed = runs.loc["hopper/precision=fp32,seed=2"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: CUDA out of memory"
    assert failed["host"] == "test"  # run.json's other keys come along
    unfinished = runs.loc["hopper/precision=fp32,seed=1"]
    assert unfinished["env_steps"] == 2000 and pd.isna(unfinished["final_eval_return"])  # its last evaluation
    assert runs.loc["pendulum/precision=bf16,seed=0", "status"] == "finished"  # summary.json, no run.json
    assert runs.loc["pendulum/precision=fp32,seed=1", "env.id"] == "Pendulum-v1"  # dotted config keys
    assert runs.loc["pendulum/precision=fp32,seed=1", "final_eval_return"] == -160.0  # summary keys


def test_run_json_gives_the_status_but_not_the_settings(tmp_path: Path, fake_run):
    """A run resumed after it finished (more steps) has an old summary.json but is running again."""
    run = _status(fake_run(tmp_path / "r", "Pendulum-v1", 0, [-900.0], precision="auto"), "running")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(info | {"precision": "bf16", "env_step": 1500}))
    row = report.load_runs([run]).iloc[0]
    assert row["status"] == "running" and row["cpu"] == "test cpu"
    assert row["precision"] == "auto"  # the config's setting, not what run.json says the machine ran
    (run / "summary.json").unlink()
    assert report.load_runs([run]).iloc[0]["env_steps"] == 1500  # run.json's step: newer than the last evaluation


def test_a_run_that_failed_before_its_first_evaluation_is_listed(tmp_path: Path, capsys):
    run = tmp_path / "runs" / "seed=0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("env:\n  id: Hopper-v5\nseed: 0\n")
    _status(run, "failed", "ValueError: action shape (3,) | (4,)")
    report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--reps", "20"])
    printed = capsys.readouterr().out
    assert "1 failed" in printed and "ValueError: action shape (3,) \\| (4,)" in printed  # | escaped in its cell


def test_group_labels_by_two_keys(runs_dir: Path):
    runs = report.load_runs([runs_dir])
    sizes = report.group_labels(runs, ["env.id", "precision"]).value_counts().to_dict()
    assert sizes == {"env.id=Hopper-v5,precision=fp32": 3, "env.id=Pendulum-v1,precision=bf16": 2,
                     "env.id=Pendulum-v1,precision=fp32": 3}


def test_group_by_a_summary_key_such_as_the_precision_used(tmp_path: Path, fake_run):
    """``precision: auto`` resolves per machine: the precision a run used is in its summary.json, not its config."""
    for seed, used in enumerate(["fp32", "fp32", "bf16"]):
        run = fake_run(tmp_path / f"auto/seed={seed}", "Pendulum-v1", seed, [-900.0, -300.0], precision="auto")
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps(summary | {"precision_used": used}))
    runs = report.load_runs([tmp_path / "auto"])
    sizes = report.group_labels(runs, ["precision", "precision_used"]).value_counts().to_dict()
    assert sizes == {"precision=auto,precision_used=bf16": 1, "precision=auto,precision_used=fp32": 2}
    with pytest.raises(report.ReportError, match="precision_usd"):
        report.group_labels(runs, ["precision_usd"])


def test_a_key_some_runs_lack_groups_them_under_none(runs_dir: Path, tmp_path: Path, fake_run):
    """Runs from before a setting existed lack its key: they form their own group instead of an error."""
    newer = fake_run(tmp_path / "newer", "Hopper-v5", 0, [1.0, 2.0])
    config = yaml.safe_load((newer / "config.yaml").read_text())
    config["reward_model"] = {"output": "linear"}
    (newer / "config.yaml").write_text(yaml.safe_dump(config))
    runs = report.load_runs([runs_dir, newer])
    table = report.aggregate(runs, ["env.id", "reward_model.output"], "final_eval_return", reps=20)
    assert {(e, o): r for e, o, r in table[["env.id", "reward_model.output", "runs"]].itertuples(index=False)} == {
        ("Hopper-v5", "None"): 3, ("Hopper-v5", "linear"): 1, ("Pendulum-v1", "None"): 5}


def test_aggregate_matches_hand_computed_numbers_over_finished_runs_only(runs_dir: Path):
    table = report.aggregate(report.load_runs([runs_dir]), ["env.id", "precision"], "final_eval_return", reps=200)

    fp32 = _row(table, **{"env.id": "Pendulum-v1", "precision": "fp32"})
    assert (fp32["runs"], fp32["finished"], fp32["not finished"], fp32["n"]) == (3, 3, "0", 3)
    assert fp32["mean"] == pytest.approx(-150.0)
    assert fp32["std"] == pytest.approx(10.0)  # sample std of -150, -160, -140
    assert (fp32["min"], fp32["max"]) == (-160.0, -140.0)
    assert fp32["iqm"] == pytest.approx(-150.0)  # 3 runs: 25% trimming drops none
    assert fp32["iqm_low"] <= fp32["iqm"] <= fp32["iqm_high"]
    assert fp32["steps_per_s"] == pytest.approx(110.0)
    assert fp32["wall_time_s"] == pytest.approx(sum(3000 / s for s in (100.0, 110.0, 120.0)) / 3)

    bf16 = _row(table, **{"env.id": "Pendulum-v1", "precision": "bf16"})
    assert bf16["mean"] == pytest.approx(-210.0) and bf16["std"] == pytest.approx(math.sqrt(200.0))

    hopper = _row(table, **{"env.id": "Hopper-v5", "precision": "fp32"})
    assert (hopper["runs"], hopper["finished"], hopper["not finished"]) == (3, 1, "1 failed, 1 unfinished")
    assert hopper["mean"] == pytest.approx(2100.0) and math.isnan(hopper["std"])  # the finished run alone
    assert hopper["iqm"] == pytest.approx(2100.0) and math.isnan(hopper["iqm_low"])  # n=1: no CI


def test_iqm_drops_the_outer_quartiles():
    iqm, low, high = report.iqm_ci([1.0, 2.0, 3.0, 100.0], reps=200)
    assert iqm == pytest.approx(2.5)  # mean of the middle two
    assert low <= iqm <= high
    assert report.iqm_ci([1.0, 2.0, 3.0, 100.0], reps=200) == (iqm, low, high)  # a fixed bootstrap seed


def _two_groups(tmp_path: Path, fake_run, a: list[float], b: list[float]) -> pd.DataFrame:
    for tag, finals in (("a", a), ("b", b)):
        for seed, final in enumerate(finals):
            run = fake_run(tmp_path / f"{tag}/seed={seed}", "Hopper-v5", seed, [0.0, final])
            (run / "config.yaml").write_text((run / "config.yaml").read_text() + f"tag: {tag}\n")
    return report.load_runs([tmp_path])


@pytest.mark.parametrize("a, b, expected", [
    ([10.0, 11.0, 12.0, 13.0], [1.0, 2.0, 3.0], 1.0),  # every run of A above every run of B
    ([1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0], 0.0),
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.5),  # identical groups
    ([1.0, 4.0], [2.0, 3.0], 0.5),  # 4 beats both, 1 neither: 2 of 4 pairs
    ([1.0, 5.0, 6.0], [2.0, 3.0, 4.0], 6 / 9),  # 5 and 6 beat all three, 1 none
])
def test_probability_of_improvement(tmp_path: Path, fake_run, a, b, expected):
    poi = report.probability_of_improvement(_two_groups(tmp_path, fake_run, a, b), "tag=a", "tag=b",
                                            "final_eval_return", reps=200)
    row = poi.iloc[0]
    assert len(poi) == 1 and row["task"] == "Hopper-v5" and (row["runs A"], row["runs B"]) == (len(a), len(b))
    assert row["P(A > B)"] == pytest.approx(expected)
    assert row["low"] <= row["P(A > B)"] + 1e-9 and row["P(A > B)"] <= row["high"] + 1e-9


def test_meta_world_tasks_behind_one_id_are_separate_tasks_in_every_table(tmp_path: Path, fake_run, capsys):
    """Meta-World's ids take the task as env.kwargs.env_name: grouped, compared and divided by id alone, its
    tasks would be pooled."""
    for task, finals in (("button-press-v3", {"a": [9.0, 8.0], "b": [1.0, 2.0]}),
                         ("door-open-v3", {"a": [1.0, 2.0], "b": [5.0, 6.0]})):
        for tag, values in finals.items():
            for seed, final in enumerate(values):
                run = fake_run(tmp_path / "runs" / task / f"tag={tag},seed={seed}", "Meta-World/goal_observable",
                               seed, [0.0, final])
                config = yaml.safe_load((run / "config.yaml").read_text())
                config["env"]["kwargs"], config["tag"] = {"env_name": task}, tag
                (run / "config.yaml").write_text(yaml.safe_dump(config))
    runs = report.load_runs([tmp_path / "runs"])
    assert set(runs["task"]) == {"Meta-World/goal_observable/button-press-v3", "Meta-World/goal_observable/door-open-v3"}
    poi = report.probability_of_improvement(runs, "tag=a", "tag=b", "final_eval_return", reps=50).set_index("task")
    assert poi["P(A > B)"].to_dict() == {"Meta-World/goal_observable/button-press-v3": 1.0,
                                         "Meta-World/goal_observable/door-open-v3": 0.0}
    report.main([str(tmp_path / "runs"), "--by", "task,tag", "--relative-to", "tag=b", "--reps", "20",
                 "--out", str(tmp_path / "out")])  # the default --by is task alone: two groups, not one
    lines = " ".join(capsys.readouterr().out.split())
    assert "| Meta-World/goal_observable/button-press-v3 | a | 2 |" in lines and "567%" in lines  # 8.5 / 1.5
    assert "| Meta-World/goal_observable/door-open-v3 | a | 2 |" in lines and "27%" in lines  # 1.5 / 5.5
    assert report.parse_args([str(tmp_path)]).keys == ["task"]


def test_compare_on_the_command_line_and_its_errors(tmp_path: Path, fake_run, capsys):
    _two_groups(tmp_path / "runs", fake_run, [10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    report.main([str(tmp_path / "runs"), "--by", "env.id,tag", "--compare", "tag=a", "tag=b", "--reps", "50",
                 "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "## Probability of improvement" in printed
    assert "| Hopper-v5 | tag=a | tag=b | 3 | 3 | 1 |" in " ".join(printed.split())  # P(A > B) = 1
    with pytest.raises(SystemExit) as stop:  # a value no run has: a typo
        report.main([str(tmp_path / "runs"), "--compare", "tag=a", "tag=zzz", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and "'tag=zzz' selects no run" in capsys.readouterr().err
    for run in (tmp_path / "runs" / "b").glob("seed=*"):  # B still running: no probability yet, and no error
        _status(run, "running")
    report.main([str(tmp_path / "runs"), "--compare", "tag=a", "tag=b", "--reps", "20", "--out", str(tmp_path / "out")])
    assert "No finished runs of both yet." in capsys.readouterr().out


def test_load_curves_is_long_with_labels(runs_dir: Path, tmp_path: Path, fake_run):
    pref = _with_labels(fake_run(tmp_path / "pref", "Pendulum-v1", 0, [-900.0, -500.0, -300.0]), [0, 50, 100])
    curves = report.load_curves([runs_dir, pref])
    assert len(curves) == 3 * 5 + 3 + 2 + 1 + 3  # one row per evaluation of each run
    assert {"run", "task", "env_step", "labels", "eval_return_mean", "steps_per_s"} <= set(curves.columns)
    assert curves.loc[curves["run"].str.endswith("pref"), "labels"].tolist() == [0, 50, 100]
    assert curves.loc[curves["task"] == "Hopper-v5", "labels"].isna().all()  # true-reward runs ask none


def _cli(runs_dir: Path, out: Path, *extra: str) -> str:
    report.main([str(runs_dir), "--by", "env.id,precision", "--out", str(out), "--title", "Fake sweep",
                 "--reps", "200", *extra])
    return (out / "report.md").read_text()


def test_cli_writes_report_curves_and_summary(runs_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "new" / "report"  # created, parents included
    markdown = _cli(runs_dir, out)
    printed = capsys.readouterr().out
    assert markdown.startswith("# Fake sweep") and markdown in printed
    assert "8 (6 finished, 1 unfinished, 1 failed)" in markdown
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| env.id"))
    assert [c.strip() for c in header.strip("|").split("|")][:7] == [
        "env.id", "precision", "runs", "finished", "not finished", "n", "mean"]
    assert lines[lines.index(header) + 1].startswith("|:---")  # to_markdown's rule under the header
    hopper = next(line for line in lines if line.startswith("| Hopper-v5"))
    assert "1 failed, 1 unfinished" in hopper and "2100.0" in hopper
    assert "-150.0 [-160.0, -140.0]" in markdown  # the fp32 IQM and its CI
    # every run is listed with its status; the failed one with its error line
    failed = next(line for line in lines if "hopper/precision=fp32,seed=2" in line)
    assert "failed" in failed and "RuntimeError: CUDA out of memory" in failed
    assert any("hopper/precision=fp32,seed=1" in line and "unfinished" in line for line in lines)
    assert "![eval_return_mean vs env steps" in markdown

    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert set(rows[0]) >= {"run", "env.id", "precision", "seed", "status", "error", "final_eval_return",
                            "env_steps", "steps_per_s"}
    assert not any(Path(value).is_absolute() for row in rows for value in row.values() if value)
    hopper0 = next(r for r in rows if r["run"] == "hopper/precision=fp32,seed=0")
    assert float(hopper0["final_eval_return"]) == 2100.0 and hopper0["env_steps"] == "3000"


def test_cpu_time_is_the_cost_column_where_runs_have_it(tmp_path: Path, fake_run):
    """CPU seconds (no pauses, no waiting for a shared core) beside wall time; a run resumed from an older
    snapshot (null) is left out of the mean, and a table without any has no such column."""
    for seed, cpu in enumerate((50.0, 70.0, None)):
        run = fake_run(tmp_path / "with" / f"seed={seed}", "Hopper-v5", seed, [1.0, 2.0])
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "cpu_time_s": cpu}))
    table = report.aggregate(report.load_runs([tmp_path / "with"]), ["env.id"], "final_eval_return", reps=50)
    assert _row(table, **{"env.id": "Hopper-v5"})["cpu_time_s"] == pytest.approx(60.0)
    markdown = _cli(tmp_path / "with", tmp_path / "out")
    header = next(line for line in markdown.splitlines() if line.startswith("| env.id"))
    assert "CPU time (s)" in header and "| 60.0 " in markdown

    fake_run(tmp_path / "without" / "seed=0", "Hopper-v5", 0, [1.0, 2.0])
    assert "CPU time" not in _cli(tmp_path / "without", tmp_path / "out2")


def _record_plots(monkeypatch) -> list[dict]:
    """The arguments of every plot_curves call (the plot is still drawn)."""
    calls, plot = [], report.plot_curves

    def recording(curves, x, y, title):
        calls.append({"curves": curves, "x": x, "y": y})
        return plot(curves, x, y, title)

    monkeypatch.setattr(report, "plot_curves", recording)
    return calls


def test_the_metric_picks_its_curve(tmp_path: Path, fake_run, monkeypatch):
    """--metric final_X aggregates the summary's final_X and plots metrics.csv's X (or X_mean)."""
    for seed, rates in enumerate([[0.0, 0.5, 1.0], [0.0, 0.2, 0.6]]):
        run = fake_run(tmp_path / f"runs/seed={seed}", "Hopper-v5", seed, [1.0, 2.0, 3.0])
        pd.read_csv(run / "metrics.csv").assign(eval_flip_rate=rates).to_csv(run / "metrics.csv", index=False)
        summary = json.loads((run / "summary.json").read_text()) | {"final_eval_flip_rate": rates[-1]}
        (run / "summary.json").write_text(json.dumps(summary))
    calls = _record_plots(monkeypatch)
    report.main([str(tmp_path / "runs"), "--metric", "final_eval_flip_rate", "--reps", "20"])
    markdown = (tmp_path / "runs" / "report.md").read_text()
    assert "## final_eval_flip_rate" in markdown and "eval_flip_rate vs env steps" in markdown
    assert "| 0.8 |" in " ".join(next(line for line in markdown.splitlines() if line.startswith("| Hopper")).split())
    assert calls[0]["y"] == "eval_flip_rate"


def test_x_labels_plots_against_labels_used(runs_dir: Path, tmp_path: Path, fake_run, monkeypatch):
    for seed in range(2):
        _with_labels(fake_run(runs_dir / f"pref/seed={seed}", "Pendulum-v1", seed, [-900.0, -500.0, -300.0],
                              precision="pref"), [0, 50, 100])
    calls = _record_plots(monkeypatch)
    markdown = _cli(runs_dir, tmp_path / "out", "--x", "labels")
    assert "eval_return_mean vs labels used" in markdown and calls[0]["x"] == "labels"
    drawn = calls[0]["curves"].dropna(subset=["labels"])  # what the plot can draw: the runs that asked labels
    assert set(drawn["labels"]) == {0, 50, 100} and set(drawn["group"]) == {"env.id=Pendulum-v1,precision=pref"}
    assert (tmp_path / "out" / "curves.png").stat().st_size < 200_000


def test_at_and_relative_to(runs_dir: Path, tmp_path: Path):
    """--at reads each run's metric at one env step (unfinished runs too); --relative-to divides by a group's median
    and mean."""
    markdown = _cli(runs_dir, tmp_path / "out", "--at", "2000", "--relative-to", "precision=fp32")
    at = markdown.split("## eval_return_mean at env step 2000")[1].split("\n## ")[0]
    hopper = next(line for line in at.splitlines() if line.startswith("| Hopper-v5"))
    assert "| 850.0 |" in " ".join(hopper.split())  # 900 (finished) and 800 (unfinished); the failed run has none
    bf16 = next(line for line in at.splitlines() if line.startswith("| Pendulum-v1 | bf16"))
    assert bf16.rstrip(" |").endswith("117%")  # -700 / -600
    final = markdown.split("## final_eval_return")[1].split("\n## ")[0]
    assert next(line for line in final.splitlines() if "| bf16" in line).rstrip(" |").endswith("140%")  # -210 / -150
    header = next(line for line in final.splitlines() if line.startswith("| env.id"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[-2:] == ["median / precision=fp32", "mean / precision=fp32"]


def test_last_k_averages_each_finished_runs_last_evaluations_and_compares_on_them(tmp_path: Path, fake_run, capsys):
    """--last K: the mean of each finished run's last K evaluations (a step logged twice by a resumed run counts
    once); a run with fewer than K has none; --compare then also compares on it."""
    root = tmp_path / "runs"
    for seed, returns in enumerate([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]):
        _status(fake_run(root / f"a/seed={seed}", "Hopper-v5", seed, returns), "finished")
    fake_run(root / "b/seed=0", "Hopper-v5", 0, [1.0, 0.0, 9.0, 0.0], steps=[1000, 2000, 2000, 3000])  # resumed
    fake_run(root / "b/seed=1", "Hopper-v5", 1, [5.0])  # one evaluation: no mean of the last 2
    for run in root.glob("*/seed=*"):
        (run / "config.yaml").write_text((run / "config.yaml").read_text() + f"tag: {run.parent.name}\n")
    curves = report.load_curves([root])
    means = report.last_evaluations(curves, "eval_return_mean", 2)
    assert means["a/seed=0"] == 0.5 and means["a/seed=1"] == 1.0
    assert means["b/seed=0"] == 4.5  # 9 at 2000 (the later of two rows) and 0 at 3000
    assert math.isnan(means["b/seed=1"])
    report.main([str(root), "--by", "tag", "--last", "2", "--compare", "tag=a", "tag=b", "--reps", "50"])
    markdown = (root / "report.md").read_text()
    section = markdown.split("## eval_return_mean, mean of the last 2 evaluations")[1].split("\n## ")[0]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in section.splitlines() if line.startswith("| ")}
    assert cells["a"][4] == "2" and cells["a"][5] == "0.75"  # n, mean
    assert cells["b"][4] == "1" and cells["b"][5] == "4.5"
    assert "## Probability of improvement: tag=a over tag=b, on final_eval_return" in markdown
    on_last = markdown.split("over tag=b, on eval_return_mean_last2")[1].split("\n## ")[0]
    assert "| Hopper-v5 | tag=a | tag=b | 2 | 1 | 0 |" in " ".join(on_last.split())  # 0.75 and 1 vs 4.5
    assert "eval_return_mean_last2" in pd.read_csv(root / "summary.csv").columns
    with pytest.raises(SystemExit) as stop:
        report.parse_args([str(root), "--last", "0"])
    assert stop.value.code == 2 and "--last: must be >= 1" in capsys.readouterr().err


def test_default_out_is_the_first_dir(runs_dir: Path, capsys):
    report.main([str(runs_dir / "hopper"), "--reps", "50"])
    assert (runs_dir / "hopper" / "report.md").is_file()
    assert (runs_dir / "hopper" / "curves.png").is_file()


@pytest.mark.parametrize("case", ["missing_dir", "no_runs", "corrupt_summary", "corrupt_metrics", "corrupt_run_json",
                                  "missing_by_key", "unknown_metric", "bad_compare"])
def test_errors_exit_2_without_traceback(case: str, runs_dir: Path, tmp_path: Path):
    args, expected = [str(runs_dir)], None
    if case == "missing_dir":
        args, expected = [str(tmp_path / "nope")], "directory not found"
    elif case == "no_runs":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        args, expected = [str(tmp_path / "empty")], "no runs found below"
    elif case == "corrupt_summary":
        (runs_dir / "pendulum/precision=fp32,seed=0/summary.json").write_text("{not json")
        expected = "precision=fp32,seed=0/summary.json"
    elif case == "corrupt_metrics":
        (runs_dir / "pendulum/precision=bf16,seed=1/metrics.csv").write_text("")
        expected = "precision=bf16,seed=1/metrics.csv"
    elif case == "corrupt_run_json":
        (runs_dir / "hopper/precision=fp32,seed=2/run.json").write_text('["failed"]')
        expected = "seed=2/run.json: expected a mapping"
    elif case == "missing_by_key":
        args, expected = [str(runs_dir), "--by", "env.id,agent.lr"], "'agent.lr'"
    elif case == "unknown_metric":
        args, expected = [str(runs_dir), "--metric", "nope"], "'nope'"
    elif case == "bad_compare":
        args, expected = [str(runs_dir), "--compare", "precision", "precision=bf16"], "KEY=VALUE"

    proc = subprocess.run([sys.executable, "-m", "pbrl.report", *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("pbrl-report: error:") and len(proc.stderr.strip().splitlines()) == 1
    assert expected in proc.stderr


def test_a_group_spec_matches_numbers_as_numbers_and_words_in_any_case():
    frame = pd.DataFrame({"teacher.mistake": [0.0, 0.1, 0.0], "tag": ["Oracle", "mistake", "oracle"]})
    assert list(report.select(frame, "teacher.mistake=0.0").index) == [0, 2]
    assert list(report.select(frame, "teacher.mistake=0,tag=ORACLE").index) == [0, 2]
    assert list(report.select(frame, "teacher.mistake=0.10").index) == [1]


def test_relative_to_divides_the_named_statistic_within_each_env():
    table = pd.DataFrame({"env.id": ["A", "A", "B", "B"], "tag": ["ppo", "pref", "ppo", "pref"],
                          "mean": [100.0, 90.0, 10.0, 5.0], "median": [100.0, 50.0, 20.0, 30.0]})
    assert report.relative_to(table, "tag=ppo", "median").tolist() == [1.0, 0.5, 1.0, 1.5]
    assert report.relative_to(table, "tag=ppo").tolist() == [1.0, 0.9, 1.0, 0.5]  # the mean by default


def test_aggregate_gives_the_median_of_finished_runs(runs_dir: Path):
    runs = report.load_runs([runs_dir])
    table = report.aggregate(runs, ["env.id"], "final_eval_return", reps=20).set_index("env.id")
    assert table.loc["Pendulum-v1", "median"] == -160.0  # of -150, -160, -140, -200, -220 (mean -174)
    assert table.loc["Hopper-v5", "median"] == 2100.0  # the one finished run
