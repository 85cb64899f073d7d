"""Shared plumbing of the run-level tests: composed configs and ``pbrl-train`` subprocesses.

Every run these tests start uses a tiny agent (32 units, batch 32) and one torch thread, so that a
few thousand Pendulum steps take seconds on a busy two-core machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from pbrl.train import compose

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"

# small and quiet: the behaviour under test does not depend on the network size
# fp32 pinned: precision=auto picks bf16 on a CPU with native bf16, and tests compare numbers to 1e-5 on any CPU
# (tests/test_precision.py covers auto and bf16)
TINY = ["agent.hidden_dim=32", "agent.batch_size=32", "threads=1", "progress=false", "precision=fp32"]
# a tiny PEBBLE run on Pendulum: two feedback rounds of 10 queries, an evaluation every 500 steps
RUN = ["env.id=Pendulum-v1", "seed_steps=200", "pretrain.steps=100", "feedback.num_interact=400",
       "feedback.max_feedback=20", "feedback.mb_size=10", "feedback.segment=20", "eval.every=500", "eval.episodes=1",
       "eval.video=none", "logger.tensorboard=false", *TINY]


def compose_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config ``pbrl-train <overrides>`` would run with, as a resolved plain dict (no hydra node)."""
    return OmegaConf.to_container(compose(overrides), resolve=True)


def tiny_config(*overrides: str) -> dict[str, Any]:
    """A fast Pendulum config for in-process Workspace tests, with ``overrides`` applied last."""
    base = TINY + ["eval.video=none", "eval.episodes=1", "eval.every=0", "snapshot.every=0",
                   "logger.tensorboard=false"]
    return compose_config(base + list(overrides))


def _clean_env() -> dict[str, str]:
    # a developer's HYDRA_FULL_ERROR=1 would turn hydra's one-line errors into tracebacks
    return {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}


def train_cmd(*args: str) -> list[str]:
    """``python -m pbrl.train <args>`` with this interpreter."""
    return [sys.executable, "-m", "pbrl.train", *args]


def run_train(args: Sequence[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``pbrl-train <args>`` to completion; ``.stdout`` holds stdout and stderr together."""
    return subprocess.run(train_cmd(*args), cwd=cwd, env=_clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def default_sigint() -> None:
    """``preexec_fn`` for a child a test sends Ctrl-C: SIGINT back to its default, as a shell starts a command.
    pytest-xdist's workers ignore SIGINT and children inherit that, so Python's own handler would never run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_train(args: Sequence[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``pbrl-train <args>`` in its own process group (so a test can kill all of it), output to ``log``."""
    with open(log, "w") as f:
        return subprocess.Popen(train_cmd(*args), cwd=cwd, env=_clean_env(), stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=default_sigint)


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll ``condition`` until it holds; fail with the log's tail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out: " + log.read_text()[-3000:]
        time.sleep(0.05)
