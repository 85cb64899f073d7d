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


def test_the_ppo_benchmark_times_ppo_with_sb3s_settings_and_its_presets_match_the_conf():
    from bench_ppo import pbrl_config, preset_drift

    for preset in ("sb3", "hopper"):
        cfg = pbrl_config("Hopper-v5", preset, 2, 4096, 1)
        assert cfg["teacher"]["name"] == "none" and cfg["agent"]["name"] == "ppo" and cfg["agent"]["n_envs"] == 2
        assert preset_drift("Hopper-v5", preset) == {}, preset  # the script's settings are the conf's


def test_the_ppo_baseline_gives_both_sides_the_presets_settings():
    from ppo_baseline import preset

    cfg = preset("hopper", 3, None)
    assert cfg["agent"]["name"] == "ppo" and cfg["teacher"]["name"] == "none" and cfg["seed"] == 3
    assert cfg["steps"] == 1_000_000 and cfg["agent"]["normalize_obs"] and cfg["agent"]["n_steps"] == 512


def test_feedback_efficiency_ppo_arms_use_their_presets_and_report_at_200k(tmp_path, capsys):
    import csv

    from feedback_efficiency import folder, overrides, ratio_table

    assert overrides("walker2d", "prefppo", 1000, 10**6, "0")[0] == "experiment=prefppo_walker2d"
    assert overrides("walker2d", "ppo", 0, 10**6, "0")[0] == "experiment=ppo_walker2d"
    assert folder("walker2d", "prefppo") == "walker2d_ppo" and folder("walker2d", "pebble") == "walker2d"
    rows = []
    for tag, budget, at_200k, final in (("ppo", 200, 1000.0, 3000.0), ("prefppo", 1000, 500.0, 2400.0)):
        run = tmp_path / tag
        run.mkdir()
        (run / "metrics.csv").write_text("env_step,eval_return_mean\n100000,1\n200000,%s\n400000,%s\n" % (at_200k, final))
        rows.append({"run": str(run), "tag": tag, "feedback.max_feedback": budget, "finished": True,
                     "final_eval_return": final, "env_steps": 400000})
    with open(tmp_path / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ratio_table(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| prefppo (1000 labels) | 1 | 500 ± 0 (50% of the true-reward arm) |" in report
    assert "| prefppo (1000 labels) | 1 | 2400 (one run) | 80% of ppo |" in report


def test_the_ppo_arm_is_the_ppo_baselines_run_not_a_second_one(tmp_path, monkeypatch):
    """feedback_efficiency's ppo arm and ppo_baseline's pbrl side train the same preset and seeds: one run serves both."""
    import feedback_efficiency as fe

    assert fe.overrides("halfcheetah", "ppo", 0, 10**6, "0,1") == ["experiment=ppo_halfcheetah", "seed=0,1"]
    assert fe.overrides("halfcheetah", "ppo", 0, 2000, "0")[-1] == "steps=2000"
    monkeypatch.setattr(fe, "PPO_BASELINE", tmp_path)
    for name in ("experiment=ppo_halfcheetah,seed=0", "experiment=ppo_halfcheetah,seed=1,steps=2000",
                 "experiment=ppo_hopper,seed=0", "experiment=ppo_halfcheetah,seed=2"):
        (tmp_path / name).mkdir()
        if not name.endswith("seed=2"):  # seed 2 has not logged yet
            (tmp_path / name / "metrics.csv").write_text("env_step\n")
    assert [p.name for p in fe.ppo_runs("halfcheetah", 10**6)] == ["experiment=ppo_halfcheetah,seed=0"]
    assert [p.name for p in fe.ppo_runs("halfcheetah", 2000)] == ["experiment=ppo_halfcheetah,seed=1,steps=2000"]
