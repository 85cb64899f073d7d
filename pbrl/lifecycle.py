"""A run's life outside the training loop: its record (``run.json``), log, progress bar, stop signals, clock,
snapshot files and whether it has finished.

``run.json`` makes a run folder self-describing: the command that reruns it, the machine it ran
on (host, CPU model and torch kernel capability, GPU, threads, precision) and its ``status``:
``running``, ``finished``, ``failed`` (with the error's last line) or ``preempted`` (stopped by a
signal after saving a snapshot; rerunning resumes it). It is rewritten atomically at every
change, so a reader never sees half a file. ``pbrl-report`` shows the status of every cell.

Clusters stop jobs with signals: Slurm sends SIGTERM on preemption and, with ``--signal``, USR1 or
USR2 ahead of the time limit; submitit requeues a job on USR2. :class:`StopSignals` turns any of
them (and a first Ctrl-C) into a request that the loop honours at the next step: it writes a
snapshot, then hands the signal to whoever handled it before (submitit requeues the job there),
or raises :class:`Preempted`.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT")
STATUSES = ("running", "finished", "failed", "preempted")


class Preempted(Exception):
    """The run stopped on a signal after writing its snapshot; rerunning the same command resumes it."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} after writing its snapshot")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe_machine(device: str | None = None) -> dict[str, Any]:
    """Host, CPU model, torch's CPU kernel capability (AVX2, AVX512...), cores and GPU model (or None)."""
    gpu = None
    if torch.cuda.is_available():
        index = torch.device(device).index if device and device.startswith("cuda") else None
        gpu = torch.cuda.get_device_name(index or 0)
    return {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_cores": os.cpu_count(), "gpu": gpu, "torch_version": torch.__version__}


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed over it): a reader sees all of it or nothing.

    Line endings are written as given (no translation), so CSV text keeps its ``\\r\\n`` on every OS.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, newline="")
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


class RunRecord:
    """``run.json`` of one run folder: what ran, where, and how it ended.

    Used as a context manager around the run: entering marks it ``running`` (counting attempts
    across resumes), leaving marks it ``finished``, ``preempted`` or ``failed`` with the error's
    last line; the exception itself still propagates.
    """

    def __init__(self, run_dir: str | Path, overrides: Sequence[str] = ()):
        self.path = Path(run_dir) / "run.json"
        self.overrides = list(overrides)
        self.data: dict[str, Any] = {}

    def __enter__(self) -> "RunRecord":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self._read()
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.data = {"status": "running", "error": None,
                     "command": shlex.join(["pbrl-train", *self.overrides, f"hydra.run.dir={self._where()}"]),  # reruns this run alone
                     "argv": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),  # what was typed (a sweep, maybe)
                     "overrides": self.overrides, **describe_machine(),
                     "pid": os.getpid(), "started": old.get("started", now), "attempt_started": now,
                     "attempts": int(old.get("attempts", 0)) + 1, "updated": now}
        write_json(self.path, self.data)
        return self

    def _where(self) -> str:
        """The run folder, relative to the working directory when below it."""
        folder = self.path.parent.resolve()
        return str(folder.relative_to(Path.cwd())) if folder.is_relative_to(Path.cwd()) else str(folder)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def update(self, **fields: Any) -> None:
        """Add or change fields (e.g. ``env_step``, ``threads``, ``precision``) and rewrite the file."""
        self.data.update(fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_json(self.path, self.data)

    def __exit__(self, kind, error, tb) -> bool:
        if error is None:
            self.update(status="finished")
        elif isinstance(error, Preempted) or (isinstance(error, SystemExit) and self.data.get("signal")):
            self.update(status="preempted")  # SystemExit: submitit requeued the job after our snapshot
        else:
            last = traceback.format_exception_only(kind, error)[-1].strip() if kind else None
            self.update(status="failed", error=last)
        return False


class StopSignals:
    """Turn SIGTERM, SIGUSR1, SIGUSR2 and a first Ctrl-C into ``requested``; a second Ctrl-C stops at once.

    Only the main thread can install handlers; elsewhere (a thread-pool launcher) this does nothing
    and the signals keep their usual effect.
    """

    def __init__(self, say: Callable[[str], None] = print):
        self.say = say
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    sig = getattr(signal, name)
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without a snapshot
        if self.requested is None:
            self.requested = signum
            hint = "; press Ctrl-C again to stop at once" if signum == signal.SIGINT else ""
            self.say(f"received {signal.Signals(signum).name}: saving a snapshot at the next step, then stopping{hint}")

    def restore(self) -> None:
        """Put back the handlers that were there before."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def __exit__(self, *exc) -> bool:
        self.restore()
        return False

    def hand_over(self, step: int) -> None:
        """After the snapshot: pass the signal to its previous Python handler (submitit requeues the job
        there and exits), then raise :class:`Preempted` if that handler returned or there was none.

        Python's own SIGINT handler is not called: its KeyboardInterrupt would turn a Ctrl-C that stopped the
        run cleanly into a traceback and a run.json that says "failed"."""
        signum = self.requested
        previous = self._previous.get(signum)
        self.restore()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)
        raise Preempted(signum, step)


# ------------------------------------------------------------------------------------- snapshots
UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


class RunClock:
    """Time a run spent in ``train()``, summed over resumes: wall time, wall time less evaluation (``train``),
    and this process's CPU time (``cpu``, all its threads; async env workers are other processes).

    CPU time is the honest cost of a run on a shared machine: a run paused (SIGSTOP, a laptop asleep)
    or waiting for another job's core adds wall time but no CPU time. ``cpu`` is None for a run resumed
    from a snapshot written before pbrl kept it.
    """

    def __init__(self):
        self.wall, self.train, self.cpu = 0.0, 0.0, 0.0
        self.restart()

    def restart(self) -> None:
        """Start counting from now (train() calls it; time before that belongs to no total)."""
        self._wall0, self._cpu0, self._eval = time.perf_counter(), time.process_time(), 0.0

    def add_eval(self, seconds: float) -> None:
        """Mark ``seconds`` of the time since the last restart as evaluation (left out of ``train``)."""
        self._eval += seconds

    def wall_now(self) -> float:
        """Total wall time including the part not yet accumulated."""
        return self.wall + time.perf_counter() - self._wall0

    def accumulate(self) -> None:
        """Move the time since the last restart into the totals, and restart."""
        now, cpu = time.perf_counter(), time.process_time()
        self.wall += now - self._wall0
        self.train += now - self._wall0 - self._eval
        self.cpu = None if self.cpu is None else self.cpu + cpu - self._cpu0
        self._wall0, self._cpu0, self._eval = now, cpu, 0.0

    def state_dict(self) -> dict:
        return {"wall_time": self.wall, "train_time": self.train, "cpu_time": self.cpu}

    def load_state_dict(self, state: dict) -> None:
        self.wall, self.train, self.cpu = state["wall_time"], state["train_time"], state.get("cpu_time")


def save_snapshot_file(state: dict, path: Path, keep_previous: bool) -> None:
    """``torch.save`` to ``path`` atomically; with ``keep_previous`` the one before stays as ``<name>.prev.pt``.

    ``path`` exists at every moment: the previous snapshot becomes ``.prev.pt`` by a hard link (a copy where the
    filesystem has none) before the new one replaces ``path``, so a kill anywhere leaves one to resume from."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    if keep_previous and path.exists():
        previous = previous_snapshot(path)
        linked = previous.with_suffix(".tmp")
        linked.unlink(missing_ok=True)
        try:
            os.link(path, linked)
        except OSError:
            shutil.copyfile(path, linked)
        os.replace(linked, previous)
    os.replace(tmp, path)


def previous_snapshot(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def load_snapshot_file(path: Path, say: Callable[..., None]) -> dict | None:
    """The snapshot at ``path`` (None if there is none), or the previous one if ``path`` cannot be read.

    A snapshot cut short (a full disk, a copy that stopped) makes torch fail deep in its zip reader;
    this says which file and what to do instead, in one line, and falls back to ``<name>.prev.pt``.
    """
    from pbrl.errors import ConfigError

    if not path.exists():
        previous = previous_snapshot(path)
        if not previous.exists():
            return None
        say(f"warning: {path.name} is missing; resuming from the previous snapshot {previous.name}", error=True)
        path = previous
    try:
        return torch.load(path, weights_only=False)
    except UNREADABLE as exc:
        why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        previous = previous_snapshot(path)
        if previous.exists():
            try:
                state = torch.load(previous, weights_only=False)
            except UNREADABLE:
                state = None
            if state is not None:
                say(f"warning: {path} is unreadable ({why}); resuming from the previous snapshot "
                    f"{previous.name} (step {state.get('step')})", error=True)
                return state
        raise ConfigError("snapshot", f"{path} is unreadable ({why}) and no earlier snapshot is kept; move it "
                                      "away to restart this run from step 0") from None


def run_logger(log_path: Path) -> Callable[..., None]:
    """``say(message, error=False)``: one line for the person running this, on stdout (stderr if ``error``)
    and, timestamped, in ``log_path`` (``train.log``)."""
    def say(message: str, error: bool = False) -> None:
        print(f"pbrl: {message}", file=sys.stderr if error else sys.stdout, flush=True)
        with open(log_path, "a") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")
    return say


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """A tqdm bar over env steps: redrawn twice a second at a terminal, every 30 s into a log file."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc=desc,
                mininterval=0.5 if interactive else 30.0, disable=not enabled)


def finished_summary(run_dir: Path, steps: int) -> dict | None:
    """The ``summary.json`` of ``run_dir`` if it covers ``steps`` (the run is done), else None (start or resume).

    A summary of fewer steps with no snapshot to go on from is a ConfigError: the run cannot be extended."""
    from pbrl.errors import ConfigError

    path = run_dir / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    if summary.get("env_steps", 0) >= steps:
        return summary
    if not (run_dir / "snapshot.pt").exists():
        raise ConfigError("steps", f"{run_dir} holds a run finished at {summary.get('env_steps')} steps "
                                   f"and no snapshot to extend it to {steps}; use a new run directory")
    return None
