"""What the experiment scripts in experiments/ claim to measure, checked on their composed configs."""

from __future__ import annotations

import sys

from helpers import REPO

sys.path.insert(0, str(REPO / "experiments"))


def test_the_sac_benchmark_times_plain_sac_on_the_env_reward():
    """experiments/bench_sac.py once timed the default PEBBLE run as "SAC"; its config is now asserted."""
    from bench_sac import pbrl_config

    cfg = pbrl_config("Hopper-v5", 100, 200, 1, "fp32")
    assert cfg["teacher"]["name"] == "none" and cfg["agent"]["hidden_dim"] == 256 and cfg["steps"] == 300
