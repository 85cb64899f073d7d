"""Sweeps through submitit, preemption-safe resume, self-describing runs (run.json), and the launcher presets."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import REPO, RUN, run_train, start_train, wait_for

from pbrl.errors import ConfigError
from pbrl.lifecycle import RunClock, RunRecord, load_snapshot_file, save_snapshot_file


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _no_duplicate_rows(run: Path) -> None:
    steps = [r["env_step"] for r in _rows(run / "metrics.csv")]
    assert len(steps) == len(set(steps)), f"{run.name}: metrics.csv rows {steps}"
    episodes = [r["episode"] for r in _rows(run / "episodes.csv")]
    assert len(episodes) == len(set(episodes)), f"{run.name}: episodes.csv has an episode twice"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_a_snapshot_at_once_and_the_rerun_resumes_there(tmp_path: Path, sig: signal.Signals):
    """A run sent SIGTERM or Ctrl-C writes its snapshot at the next step (not the last periodic one), says so in one
    line (no KeyboardInterrupt traceback), and loses nothing."""
    args = [*RUN, "steps=1500", "snapshot.every=1000", f"hydra.run.dir={tmp_path / 'run'}"]
    run = tmp_path / "run"
    proc = start_train(args, tmp_path, tmp_path / "first.log")
    try:
        wait_for(lambda: (run / "rounds.csv").exists(), proc, tmp_path / "first.log")  # mid-way, before any snapshot
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 128 + sig
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "preempted" and record["signal"] == sig.name, record
    stopped = record["env_step"]
    assert 0 < stopped < 1000  # saved on the signal, not at the periodic snapshot point
    log = (tmp_path / "first.log").read_text()
    assert "rerun the same command to resume" in log and "Traceback" not in log, log

    second = run_train(args, tmp_path)
    assert second.returncode == 0, second.stdout
    assert f"resumed {run} at step {stopped}" in second.stdout
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["attempts"] == 2 and record["error"] is None
    _no_duplicate_rows(run)
    assert [int(r["env_step"]) for r in _rows(run / "metrics.csv")] == [500, 1000, 1500]
    summary = json.loads((run / "summary.json").read_text())
    assert 0 < summary["cpu_time_s"] and 0 < summary["wall_time_s"]  # both attempts' seconds, kept in the snapshot


def test_ctrl_c_stops_a_local_joblib_sweep_with_every_runs_snapshot_and_the_rerun_finishes_it(tmp_path: Path):
    """Ctrl-C reaches the sweep process and both runs: each run saves at its next step; the sweep process must not
    make joblib kill them mid-save (before LocalSweepSignals both ended "failed: KeyboardInterrupt")."""
    sweep = tmp_path / "sweep"
    args = ["-m", *RUN, "steps=1500", "snapshot.every=0", "seed=0,1", "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}"]
    proc = start_train(args, tmp_path, tmp_path / "first.log")
    try:  # both runs mid-way, past their first round
        wait_for(lambda: len(list(sweep.glob("*/rounds.csv"))) == 2, proc, tmp_path / "first.log")
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal delivers Ctrl-C: to the whole foreground group
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60  # the runs outlive the sweep process by their snapshot's write
        while any(json.loads((r / "run.json").read_text())["status"] == "running" for r in sweep.glob("*/")):
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    runs = sorted(r for r in sweep.iterdir() if r.is_dir() and not r.name.startswith("."))
    assert len(runs) == 2
    for run in runs:
        record = json.loads((run / "run.json").read_text())
        assert record["status"] == "preempted" and record["signal"] == "SIGINT", record
        assert 0 < record["env_step"] < 1500 and load_snapshot_file(run / "snapshot.pt", print)["step"] == record["env_step"]
        assert not (run / "snapshot.tmp").exists()

    second = run_train(args, tmp_path)
    assert second.returncode == 0, second.stdout
    for run in runs:
        record = json.loads((run / "run.json").read_text())
        assert record["status"] == "finished" and record["attempts"] == 2, record
        _no_duplicate_rows(run)


def test_a_signal_to_one_run_of_a_joblib_sweep_leaves_the_others_running(tmp_path: Path):
    """SIGTERM to one run (a person stopping one cell, a per-process OOM guard): that run saves and stops, its
    sibling runs on to the end, and the sweep then reports the stop in one line (exit 1). A SystemExit in the
    worker used to make joblib kill the sibling, whose run.json then said "running" forever."""
    sweep = tmp_path / "sweep"
    args = ["-m", *RUN, "steps=3000", "snapshot.every=0", "seed=0,1", "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}"]
    proc = start_train(args, tmp_path, tmp_path / "sweep.log")
    try:
        wait_for(lambda: len(list(sweep.glob("*/rounds.csv"))) == 2, proc, tmp_path / "sweep.log")
        stopped, other = sorted(r.parent for r in sweep.glob("*/rounds.csv"))
        os.kill(json.loads((stopped / "run.json").read_text())["pid"], signal.SIGTERM)
        assert proc.wait(timeout=180) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert json.loads((stopped / "run.json").read_text())["status"] == "preempted"
    assert json.loads((other / "run.json").read_text())["status"] == "finished"
    assert json.loads((other / "summary.json").read_text())["env_steps"] == 3000
    log = (tmp_path / "sweep.log").read_text()
    assert log.rstrip().splitlines()[-3].startswith("pbrl-train: stopped by SIGTERM"), log[-2000:]
    assert "Traceback" not in log


def test_the_run_clock_counts_cpu_seconds_not_pauses_and_survives_a_resume():
    clock = RunClock()
    time.sleep(0.3)  # paused or waiting: wall time, next to no CPU time
    clock.accumulate()
    assert clock.wall >= 0.3 and clock.cpu < 0.1
    end = time.process_time() + 0.2
    while time.process_time() < end:  # busy
        pass
    clock.add_eval(0.05)
    clock.accumulate()
    assert clock.cpu >= 0.2 and clock.train == pytest.approx(clock.wall - 0.05)
    restored = RunClock()
    restored.load_state_dict(clock.state_dict())
    assert restored.state_dict() == clock.state_dict()
    older = RunClock()  # a snapshot written before pbrl kept CPU time: unknown, not a part of it
    older.load_state_dict({"wall_time": 5.0, "train_time": 4.0})
    older.accumulate()
    assert older.cpu is None and older.wall >= 5.0 and older.train >= 4.0


def test_run_json_describes_the_run_and_a_failed_run_says_why(tmp_path: Path):
    ok = run_train([*RUN, "teacher=none", "steps=300", "eval.every=0", f"hydra.run.dir={tmp_path / 'ok'}"], tmp_path)
    assert ok.returncode == 0, ok.stdout
    record = json.loads((tmp_path / "ok" / "run.json").read_text())
    assert record["status"] == "finished"
    for key in ("command", "argv", "host", "cpu", "cpu_capability", "gpu", "threads", "precision", "device"):
        assert key in record, key
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and record["threads"] == 1
    assert record["command"].startswith("pbrl-train ") and "teacher=none" in record["command"]

    bad = run_train([*RUN, "feedback.segment=0", f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stdout
    record = json.loads((tmp_path / "bad" / "run.json").read_text())
    assert record["status"] == "failed" and "feedback.segment" in record["error"], record


def test_run_record_marks_an_exception_failed_and_keeps_counting_attempts(tmp_path: Path):
    with pytest.raises(RuntimeError):
        with RunRecord(tmp_path, ["seed=1"]):
            raise RuntimeError("the env's physics blew up\nat step 12")
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("RuntimeError: the env's physics")
    with RunRecord(tmp_path, ["seed=1"]) as rec:
        rec.update(env_step=5)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "finished" and record["attempts"] == 2 and record["env_step"] == 5
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unreadable_snapshot_falls_back_to_the_previous_one_or_says_what_to_do(tmp_path: Path):
    path, notes = tmp_path / "snapshot.pt", []

    def say(message, error=False):
        notes.append(message)

    save_snapshot_file({"step": 100}, path, keep_previous=True)
    save_snapshot_file({"step": 200}, path, keep_previous=True)
    assert load_snapshot_file(path, say)["step"] == 200 and (tmp_path / "snapshot.prev.pt").exists()
    path.write_bytes(path.read_bytes()[:50])  # cut short, as a full disk leaves it
    assert load_snapshot_file(path, say)["step"] == 100
    assert "unreadable" in notes[-1] and "snapshot.prev.pt" in notes[-1]
    (tmp_path / "snapshot.prev.pt").unlink()
    with pytest.raises(ConfigError, match="snapshot.pt is unreadable .* move it away"):
        load_snapshot_file(path, say)



def test_a_kill_at_any_point_of_a_snapshot_write_leaves_one_to_resume_from(tmp_path: Path, monkeypatch):
    """A sweep's launcher killed a run between keeping the previous snapshot and putting the new one in place: the
    run restarted from step 0. Now ``snapshot.pt`` exists at every moment, and a missing one resumes the previous."""
    import pbrl.lifecycle as lifecycle

    path, notes = tmp_path / "snapshot.pt", []
    save_snapshot_file({"step": 100}, path, keep_previous=True)
    real_replace = os.replace

    def killed_before_the_new_one_lands(src, dst):
        if Path(src).name == "snapshot.tmp":
            raise KeyboardInterrupt  # the kill
        real_replace(src, dst)

    monkeypatch.setattr(lifecycle.os, "replace", killed_before_the_new_one_lands)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot_file({"step": 200}, path, keep_previous=True)
    monkeypatch.undo()
    say = lambda message, error=False: notes.append(message)  # noqa: E731
    assert load_snapshot_file(path, say)["step"] == 100 and not notes
    path.unlink()  # as a run killed mid-rename by an older pbrl left it
    assert load_snapshot_file(path, say)["step"] == 100
    assert notes == ["warning: snapshot.pt is missing; resuming from the previous snapshot snapshot.prev.pt"]
    (tmp_path / "snapshot.prev.pt").unlink()
    assert load_snapshot_file(path, say) is None  # neither: a fresh start

def test_a_truncated_snapshot_gives_one_line_from_the_command_line(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "snapshot.pt").write_bytes(b"PK\x03\x04 not a whole zip archive")
    out = run_train([*RUN, "steps=600", f"hydra.run.dir={run}"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stdout, out.stdout
    assert "pbrl-train: error: snapshot: " in out.stdout and "snapshot.pt is unreadable" in out.stdout


@pytest.mark.parametrize("launcher,cpus", [("submitit_local", 1), ("slurm", 2), ("ray", 1), ("joblib", None)])
def test_launcher_presets_compose_with_one_gpu_per_job_only_for_cuda(launcher: str, cpus):
    from pbrl.train import compose  # also registers the ${pbrl_gpus:} resolver

    for device, gpus in (("cpu", 0), ("auto", 0), ("cuda", 1)):
        overrides = [f"hydra/launcher={launcher}", f"device={device}"]
        try:
            cfg = compose(overrides, hydra_node=True)
        except Exception as exc:  # the slurm preset extends the plugin's schema: it needs the plugin
            pytest.skip(f"{launcher}: {exc}")
        node = cfg.hydra.launcher
        if launcher == "ray":
            assert node.ray.remote.num_gpus == gpus and node.ray.remote.num_cpus == cpus
        elif launcher == "joblib":
            assert node.n_jobs == 2
        else:
            assert node.gpus_per_node == gpus and node.cpus_per_task == cpus


def test_a_stopped_and_relaunched_submitit_sweep_finishes_every_cell_exactly_once(tiny_sweep: Path):
    stopped = json.loads((tiny_sweep.parent / "stopped.json").read_text())
    assert len(stopped) == 4 and {r["status"] for r in stopped.values()} == {"preempted"}, stopped
    cells = sorted(p for p in tiny_sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    finished = [c for c in cells if (c / "summary.json").exists()]
    assert len(finished) == 4 and len(cells) == 5
    for cell in finished:
        record = json.loads((cell / "run.json").read_text())
        assert record["status"] == "finished" and record["attempts"] == 2 and record["threads"] == 1
        assert json.loads((cell / "summary.json").read_text())["env_steps"] == 1200
        assert "launcher" not in cell.name and "timeout" not in cell.name  # launcher settings never name a run
        wandb = yaml.safe_load((cell / "config.yaml").read_text())["logger"]["wandb"]
        assert wandb["group"] == tiny_sweep.name and wandb["mode"] == "disabled"  # a sweep's runs share a group
        assert {t.split("=")[0] for t in wandb["tags"]} == {"experiment", "query.selection", "teacher"}
        _no_duplicate_rows(cell)
        log = (cell / "train.log").read_text()
        assert log.count("resumed ") == 1 and log.count("finished ") == 1
    (bad,) = [c for c in cells if c not in finished]
    assert json.loads((bad / "run.json").read_text())["status"] == "failed"


def test_the_report_shows_the_failed_cell_of_the_sweep(tiny_sweep: Path, tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "pbrl.report", str(tiny_sweep), "--by", "teacher.name,query.selection",
                          "--out", str(tmp_path / "rep")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=180)
    assert out.returncode == 0 and "Traceback" not in out.stdout, out.stdout
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "failed" in text and "feedback.segment" in text, text


def test_long_sweep_run_names_are_cut_with_a_hash_that_keeps_them_apart():
    from pbrl.train import _run_name

    assert _run_name("seed=1,teacher=oracle") == "seed=1,teacher=oracle"
    a, b = _run_name("x" * 300 + ",seed=0"), _run_name("x" * 300 + ",seed=1")
    assert a != b and len(a.encode()) <= 200 and len(b.encode()) <= 200


def test_a_time_limit_signal_under_submitit_saves_requeues_and_resumes_in_the_same_sweep(tmp_path: Path):
    """USR2 (Slurm's warning before the time limit): snapshot, submitit's checkpoint and requeue, resume."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", *RUN, "steps=1200", "snapshot.every=1000", "seed=3",
            f"hydra.sweep.dir={sweep}"]
    proc = start_train(args, tmp_path, tmp_path / "sweep.log")
    try:
        wait_for(lambda: any(sweep.glob("*/rounds.csv")), proc, tmp_path / "sweep.log")
        job = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep}"], stdout=subprocess.PIPE, text=True)
        os.kill(int(job.stdout.split()[0]), signal.SIGUSR2)
        assert proc.wait(timeout=240) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (run,) = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    log = (run / "train.log").read_text()
    assert "received SIGUSR2" in log and log.count("resumed ") == 1 and "finished " in log
    stopped = int(log.split("stopped at step ")[1].split(";")[0])
    assert f"at step {stopped}\n" in log.split("resumed ")[1].split("\n")[0] + "\n"  # resumed where it stopped
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["attempts"] == 2
    _no_duplicate_rows(run)


def test_the_wandb_run_id_follows_the_run_folder(tmp_path: Path):
    from pbrl.common.logger import wandb_run_id

    assert wandb_run_id(tmp_path / "a") == wandb_run_id(tmp_path / "x" / ".." / "a") != wandb_run_id(tmp_path / "b")


def test_cluster_sweeps_log_to_wandb_offline_unless_told_and_share_a_group():
    from pbrl.train import sweep_wandb

    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    for launcher, overrides, mode in ((slurm, ["seed=1"], "offline"), (slurm, ["logger.wandb.mode=online"], "online"),
                                      ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", [],
                                       "disabled")):
        wandb = {"mode": "online" if "logger.wandb.mode=online" in overrides else "disabled", "group": None}
        sweep_wandb(wandb, "walker_sweep", "seed=1,teacher=mistake", launcher, overrides)
        assert wandb["mode"] == mode and wandb["group"] == "walker_sweep"
        assert wandb["tags"] == ["seed=1", "teacher=mistake"]


def test_the_analysis_notebook_reads_the_sweep(tiny_sweep: Path, python3_kernel: str, monkeypatch):
    """The notebook on the 2x2 submitit sweep that tests/conftest.py makes (stopped, relaunched, one failed cell)."""
    nbformat, nbclient = pytest.importorskip("nbformat"), pytest.importorskip("nbclient")
    monkeypatch.setenv("PBRL_RUNS", str(tiny_sweep))
    monkeypatch.setenv("PBRL_BY", "teacher.name,query.selection")
    path = REPO / "notebooks" / "analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, kernel_name=python3_kernel, timeout=120,
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    shown = "".join(out.get("data", {}).get("text/plain", "") for out in outputs)
    assert "5 runs below" in text and "4 finished" in text and "1 failed" in text, text
    assert "feedback.segment" in shown  # the failed cell's error line
    assert "P(query.selection=" in text and any("image/png" in out.get("data", {}) for out in outputs)
