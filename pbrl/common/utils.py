"""Seeding, device and thread selection, and RNG state capture for snapshots."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from pbrl.errors import ConfigError


def set_seed(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return the NumPy generator the run draws from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError("device", "cuda requested but torch sees no CUDA GPU; use device=auto or device=cpu")
        return torch.device(name)
    raise ConfigError("device", f"got {name!r}; allowed: auto, cpu, cuda (or cuda:N)")


def resolve_threads(threads, parallel_jobs: int = 1, busy: float | None = None) -> int:
    """Torch intra-op threads: an int as given, or ``auto`` = the idle cores shared by parallel jobs.

    ``busy`` is how many cores other work keeps busy (default: the 1-minute load average, rounded).
    Torch threads that have to share cores with other busy processes spin and wait on each other:
    on 2 cores beside two busy runs, 2 threads trained over 8 times slower than 1.
    """
    if threads == "auto" or threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if busy is None:
            busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        idle = max(1, cores - round(busy))
        return max(1, idle // max(1, parallel_jobs))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError("threads", f"got {threads!r}; allowed: auto or an integer >= 1")
    return threads


def rng_state(np_rng: np.random.Generator) -> dict:
    """Every RNG state a run draws from, for exact resume."""
    state = {"python": random.getstate(), "numpy_global": np.random.get_state(),
             "numpy": np_rng.bit_generator.state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, np_rng: np.random.Generator) -> None:
    """Restore what rng_state captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy_global"])
    np_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
