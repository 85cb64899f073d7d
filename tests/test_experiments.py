"""What the experiment scripts in experiments/ claim to measure, checked on their composed configs."""

from __future__ import annotations

import shutil
import sys

import pytest

from helpers import REPO
from pbrl.run_config import flatten

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


def test_feedback_efficiency_ppo_arms_use_their_presets_and_report_at_200k(tmp_path):
    """The PPO folder's report: PrefPPO's return as a share of PPO's, at the end and at 200k steps."""
    import json

    from feedback_efficiency import BY, folder, overrides, report_options

    from pbrl import report

    assert overrides("walker2d", "prefppo", 1000, 10**6, "0")[0] == "experiment=prefppo_walker2d"
    assert overrides("walker2d", "ppo", 0, 10**6, "0")[0] == "experiment=ppo_walker2d"
    assert folder("walker2d", "prefppo") == "walker2d_ppo" and folder("walker2d", "pebble") == "walker2d"
    assert report_options("walker2d", 200_000) == ["--relative-to", "tag=sac"]  # no runs past 200k: no --at
    for tag, budget, at_200k, final in (("ppo", 100, 1000.0, 3000.0), ("prefppo", 1000, 500.0, 2400.0)):
        run = tmp_path / "runs" / tag / "seed=0"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"env: {{id: Walker2d-v5}}\ntag: {tag}\nseed: 0\n"
                                         f"feedback: {{max_feedback: {budget}}}\n")
        (run / "metrics.csv").write_text(f"env_step,eval_return_mean\n100000,1\n200000,{at_200k}\n400000,{final}\n")
        (run / "summary.json").write_text(json.dumps({"final_eval_return": final, "env_steps": 400000}))
    out = tmp_path / "out"
    report.main([str(tmp_path / "runs"), "--by", BY, "--out", str(out), "--reps", "20",
                 *report_options("walker2d_ppo", 10**6)])
    text = (out / "report.md").read_text()
    final, at = text.split("## final_eval_return")[1], text.split("## eval_return_mean at env step 200000")[1]

    def row(section: str, tag: str) -> str:
        return next(line for line in section.splitlines() if f"| {tag} " in line).rstrip(" |")

    assert row(final, "prefppo").endswith("80%") and row(final, "ppo").endswith("100%")  # 2400 / 3000
    assert row(at, "prefppo").endswith("50%") and row(at, "ppo").endswith("100%")  # 500 / 1000 at 200k steps


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


def test_finished_runs_are_archived_small_and_restored_into_a_fresh_checkout(tmp_path):
    """runs/ does not outlive a checkout: finished runs' small files go to the committed archive and come back."""
    import json

    from common import archive, restore

    runs, kept = tmp_path / "runs", tmp_path / "archive"
    done, going = runs / "study" / "seed=0", runs / "study" / "seed=1"
    for run, status in ((done, "finished"), (going, "running")):
        (run / ".hydra").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"status": status}))
        (run / "config.yaml").write_text("seed: 0\n")
        (run / "metrics.csv").write_text("env_step,eval_return_mean\n1000,1.5\n")
        (run / "snapshot.pt").write_bytes(b"x" * 1000)
        (run / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
        (run / ".hydra" / "hydra.yaml").write_text("runtime: {cwd: /somewhere/on/this/machine}\n")
    (done / "summary.json").write_text(json.dumps({"env_steps": 1000}))
    (going / "summary.json").write_text(json.dumps({"env_steps": 500}))  # an earlier, shorter run being extended

    assert archive([runs / "study"], runs=runs, to=kept) == 1
    assert archive([runs / "study"], runs=runs, to=kept) == 0  # once only
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files == ["study/seed=0/.hydra/overrides.yaml", "study/seed=0/config.yaml", "study/seed=0/metrics.csv",
                     "study/seed=0/run.json", "study/seed=0/summary.json"]  # no snapshot, no machine paths
    (done / "metrics.csv").write_text("env_step,eval_return_mean\n1000,9.9\n")  # changed after archiving: kept as was
    (done / "back_share.json").write_text("{}")  # a measure written after archiving: added
    assert archive([runs / "study"], runs=runs, to=kept) == 0
    assert (kept / "study" / "seed=0" / "back_share.json").is_file()
    assert "1.5" in (kept / "study" / "seed=0" / "metrics.csv").read_text()
    (done / "metrics.csv").write_text("env_step,eval_return_mean\n1000,1.5\n")

    fresh = tmp_path / "fresh" / "runs"
    assert restore(runs=fresh, archived=kept) == 1
    assert (fresh / "study" / "seed=0" / "metrics.csv").read_text() == (done / "metrics.csv").read_text()
    assert restore(runs=fresh, archived=kept) == 0
    assert (fresh / "study" / "seed=0" / "back_share.json").is_file()
    (fresh / "study" / "seed=0" / "back_share.json").unlink()  # restored before the archive had it: gained later
    assert restore(runs=fresh, archived=kept) == 0 and (fresh / "study" / "seed=0" / "back_share.json").is_file()
    (going / "metrics.csv").write_text("env_step\n7\n")  # a run in progress under the same name is left alone
    assert restore(runs=runs, archived=kept) == 0 and (done / "snapshot.pt").exists()


def test_a_committed_report_is_not_replaced_by_one_from_fewer_runs(tmp_path, monkeypatch):
    import common

    monkeypatch.setattr(common, "ROOT", tmp_path)
    monkeypatch.setattr(common, "RUNS", tmp_path / "runs")
    calls = []
    done = type("Done", (), {"returncode": 0})
    monkeypatch.setattr(common.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or done)
    run = tmp_path / "runs" / "study" / "seed=1"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("env_step\n1\n")
    (run / "config.yaml").write_text("seed: 1\n")
    out = tmp_path / "results" / "study"
    out.mkdir(parents=True)
    (out / "summary.csv").write_text('run,seed\nseed=0,0\nseed=1,1\n')  # seed 0 is gone
    assert common.lost_runs([tmp_path / "runs" / "study"], out) == ["seed=0"]
    common.report([tmp_path / "runs" / "study"], out, "seed", "t")
    assert calls[-1][calls[-1].index("--out") + 1] == "results/study/partial"
    (out / "summary.csv").write_text('run,seed\nseed=1,1\n')  # nothing lost: the report is replaced
    common.report([tmp_path / "runs" / "study"], out, "seed", "t")
    assert calls[-1][calls[-1].index("--out") + 1] == "results/study"
    (out / "summary.csv").write_text('run,seed,status\nseed=0,0,running\nseed=1,1,finished\n')
    assert common.lost_runs([tmp_path / "runs" / "study"], out) == []  # seed 0 was going, never archived


@pytest.mark.parametrize("studies", [["a"], ["a", "b"]])
def test_a_report_pbrl_report_wrote_loses_no_runs(tmp_path, monkeypatch, studies):
    """lost_runs names runs as pbrl-report does (relative to the one dir, or behind each of several dirs), so a
    report that pbrl-report itself wrote over runs that are all still here goes to its own folder, not partial/."""
    import common
    from pbrl.report import main as report_main

    monkeypatch.setattr(common, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    for study in studies:
        for seed in (0, 1):
            run = tmp_path / "runs" / study / f"seed={seed}"
            run.mkdir(parents=True)
            (run / "metrics.csv").write_text(f"env_step,eval_return_mean\n10,{seed}.5\n")
            (run / "config.yaml").write_text(f"seed: {seed}\n")
            (run / "summary.json").write_text(f'{{"final_eval_return": {seed}.5}}')  # finished
    out = tmp_path / "results" / "study"
    report_main([*(f"runs/{s}" for s in studies), "--by", "seed", "--out", "results/study"])
    dirs = [tmp_path / "runs" / s for s in studies]
    assert common.lost_runs(dirs, out) == []
    shutil.rmtree(tmp_path / "runs" / studies[-1] / "seed=1")
    assert common.lost_runs(dirs, out) == [("seed=1" if len(studies) == 1 else f"runs/{studies[-1]}/seed=1")]


def test_a_sweep_joining_a_report_loses_none_of_its_runs(tmp_path, monkeypatch):
    """A report over one sweep names its runs relative to it; when a second sweep (a variant) joins, pbrl-report
    names them relative to ROOT. The first sweep's runs are still all here: the report is replaced, not partial/."""
    import common
    from pbrl.report import main as report_main

    monkeypatch.setattr(common, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    for study in ("a", "a_variant"):
        run = tmp_path / "runs" / study / "seed=0"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text("env_step,eval_return_mean\n10,1.5\n")
        (run / "config.yaml").write_text("seed: 0\n")
        (run / "summary.json").write_text('{"final_eval_return": 1.5}')
    out = tmp_path / "results" / "a"
    report_main(["runs/a", "--by", "seed", "--out", "results/a"])  # one sweep: the run is "seed=0"
    assert common.lost_runs([tmp_path / "runs" / "a", tmp_path / "runs" / "a_variant"], out) == []
    shutil.rmtree(tmp_path / "runs" / "a" / "seed=0")
    assert common.lost_runs([tmp_path / "runs" / "a", tmp_path / "runs" / "a_variant"], out) == ["seed=0"]


def test_the_back_share_table_keeps_each_finished_runs_share_beside_it(tmp_path, monkeypatch):
    """The share comes from the run's snapshot; once the snapshot is gone (a fresh checkout: snapshots are not
    archived), from the back_share.json written beside the finished run, for the same window only."""
    import json

    import feedback_efficiency
    import halfcheetah_flip

    sweep = tmp_path / "runs" / "arm"
    for seed, done in ((0, True), (1, False)):
        run = sweep / f"seed={seed}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"tag: arm\nseed: {seed}\n")
        if done:
            (run / "summary.json").write_text(json.dumps({"final_eval_return": 4321.0}))
    out = tmp_path / "back_share.md"
    monkeypatch.setattr(halfcheetah_flip, "back_share", lambda run, a, b: 0.25)  # both snapshots here
    feedback_efficiency.back_share_table([sweep], out)
    assert "| arm | 0 | 25% | 4321 |" in out.read_text() and "| arm | 1 | 25% | unfinished |" in out.read_text()
    assert json.loads((sweep / "seed=0" / "back_share.json").read_text()) == {"window": [70_000, 100_000],
                                                                              "share": 0.25}
    assert not (sweep / "seed=1" / "back_share.json").exists()  # a run still going may change its share
    monkeypatch.setattr(halfcheetah_flip, "back_share", lambda run, a, b: None)  # the snapshots are gone
    feedback_efficiency.back_share_table([sweep], out)
    assert "| arm | 0 | 25% | 4321 |" in out.read_text() and "| arm | 1 | – | unfinished |" in out.read_text()
    feedback_efficiency.back_share_table([sweep], out, window=(50_000, 100_000))  # another window: not that share
    assert "| arm | 0 | – | 4321 |" in out.read_text()


def test_the_reward_probe_scores_each_policys_episodes_with_each_model(tmp_path, monkeypatch, capsys):
    """experiments/probe_reward_ceiling.py on a tiny finished PrefPPO run: true return, length, learned return
    and learned reward per step per policy, recomputed here from the run's own agent and reward model."""
    import numpy as np
    import torch
    from helpers import tiny_config
    from probe_reward_ceiling import main, reward_model, rollouts

    from pbrl.workspace import Workspace

    ppo = ["agent=ppo", "agent.n_envs=2", "agent.n_steps=128", "agent.batch_size=64", "agent.n_epochs=2",
           "seed_steps=0", "pretrain.steps=400", "feedback.num_interact=400", "feedback.mb_size=10",
           "feedback.max_feedback=20", "feedback.segment=25", "reward_model.hidden_dim=32", "reward_model.epochs=5"]
    run = tmp_path / "run"
    Workspace(tiny_config(*ppo, "steps=1200"), run).train()
    monkeypatch.setattr(sys, "argv", ["probe", str(run), "--policies", str(run), "--episodes", "2",
                                      "--out", str(tmp_path / "probe.md")])
    main()
    table = (tmp_path / "probe.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| prefppo s0") or line.startswith("| ppo s0"))
    cells = [c.strip() for c in row.strip("|").split("|")]

    returns, trajectories = rollouts(run, 2)  # deterministic: the same episodes again
    model = reward_model(run, trajectories[0][0].shape[1], trajectories[0][1].shape[1])
    learned = [float(model.reward(torch.as_tensor(o), torch.as_tensor(a)).sum()) for o, a in trajectories]
    steps = sum(len(o) for o, _ in trajectories)
    assert cells[1] == f"{np.mean(returns):.0f} ± {np.std(returns):.0f}" and cells[2] == f"{steps / 2:.0f}"
    assert cells[3] == f"{np.mean(learned):.0f} ({np.sum(learned) / steps:.2f})"
    assert "| Spearman (all episodes) | | |" in table


def test_the_reward_probe_plays_a_sac_run_whose_agent_file_holds_its_replay_buffer(tmp_path):
    """A SAC run's agent.pt carries its replay buffer (the run's capacity); the probe plays only the policy."""
    import torch
    from helpers import tiny_config
    from probe_reward_ceiling import rollouts

    from pbrl.workspace import Workspace

    run = tmp_path / "sac"
    Workspace(tiny_config("steps=600", "seed_steps=200", "pretrain.steps=0", "feedback.num_interact=200",
                          "feedback.mb_size=5", "feedback.max_feedback=10", "feedback.segment=20"), run).train()
    assert "buffer" in torch.load(run / "agent.pt", weights_only=False)
    returns, trajectories = rollouts(run, 1)
    assert len(returns) == 1 and trajectories[0][0].shape[0] == trajectories[0][1].shape[0] > 0


def test_the_episode_table_gives_each_arms_mean_length_and_reward_per_step(tmp_path):
    """episodes.md: per arm and stretch of the run, mean episode length, true and learned reward per step
    (learned over the episodes the model scored); unfinished runs are left out."""
    import json

    from feedback_efficiency import episode_table

    def run(name: str, tag: str, rows: str, finished: bool = True) -> None:
        path = tmp_path / "sweep" / name
        path.mkdir(parents=True)
        (path / "config.yaml").write_text(f"tag: {tag}\nseed: 0\n")
        (path / "episodes.csv").write_text("env_step,episode,length,return,learned_return\n" + rows)
        if finished:
            (path / "summary.json").write_text(json.dumps({"final_eval_return": 1.0}))

    run("a", "linear", "50,0,100,100,\n90,1,300,900,30\n150,2,200,600,40\n")  # first episode before any model
    run("b", "linear", "120,0,400,400,0\n", finished=False)  # still going: left out
    run("c", "ppo", "60,0,50,100,\n")
    out = tmp_path / "episodes.md"
    episode_table([tmp_path / "sweep"], out, bins=(0, 100, 200))
    rows = {line.split(" | ")[0].strip("| "): line for line in out.read_text().splitlines() if line.startswith("| ")}
    # 0-100: lengths 100 and 300 (mean 200), true (100 + 900) / 400, learned 30 / 300 (the scored episode only)
    assert rows["linear"] == "| linear | 1 | 200, 2.50, 0.10 | 200, 3.00, 0.20 |"
    assert rows["ppo"] == "| ppo | 1 | 50, 2.00, – | – |"


def test_turnovers_are_the_steps_back_upright_after_a_full_window_on_the_back_within_one_episode():
    """probe_turnover_barrier.turnovers: a turn-over counts only with `window` steps on the back before it and
    `window` upright after it, and none of them across an episode start."""
    import numpy as np
    from probe_turnover_barrier import turnovers

    flipped = np.zeros(60, bool)
    flipped[5:15] = True    # 10 on the back, upright from 15 to 25: a turn-over at 15
    flipped[25:28] = True   # 3 steps on the back: too short for window 4
    flipped[40:50] = True   # back upright at 50, but an episode starts at 52
    start = np.zeros(60, bool)
    start[[0, 52]] = True
    assert turnovers(flipped, start, window=4).tolist() == [15]
    assert turnovers(flipped, start, window=2).tolist() == [15, 28, 50]  # 50, 51 are still in the episode
    start[52] = False
    assert turnovers(flipped, start, window=4).tolist() == [15, 50]


def test_every_feedback_efficiency_arm_composes_into_the_settings_its_name_says():
    """A typo in an arm's overrides would only surface hours into a queue: each arm composes, on each task."""
    import feedback_efficiency as fe

    from helpers import compose_config

    for task in fe.TASKS:
        for method in fe.METHODS:
            if method == "ppo":  # ppo_baseline's preset, tested above
                continue
            cfg = compose_config(fe.overrides(task, method, 1000, 2000, "0"))
            assert cfg["tag"] == method and cfg["steps"] == 2000, (task, method)
            assert (cfg["teacher"]["name"] == "none") == (method in fe.TRUE_REWARD), (task, method)
    linear = compose_config(fe.overrides("halfcheetah", "pebble_bpref_sac_linear", 1000, 2000, "0"))
    assert linear["reward_model"]["output"] == "linear" and linear["agent"]["hidden_dim"] == 256
    assert linear["agent"]["init_alpha"] == 0.1  # B-Pref's SAC, at CPU width


def test_feedback_efficiency_true_reward_arm_runs_the_pebble_presets_agent():
    """The ratio is like for like: on each task the ``sac`` arm trains the agent the PEBBLE preset trains (HalfCheetah's
    preset runs B-Pref's SAC since issue 17's screen), and the schedule arms keep the SB3 SAC they were screened with."""
    import feedback_efficiency as fe

    from helpers import compose_config

    for task in fe.TASKS:
        sac, pebble = (compose_config(fe.overrides(task, m, 1000, 2000, "0")) for m in ("sac", "pebble"))
        assert sac["agent"] == pebble["agent"], task
        assert sac["teacher"]["name"] == "none" and pebble["teacher"]["name"] != "none", task
    preset = compose_config(fe.overrides("halfcheetah", "pebble", 1000, 2000, "0"))
    assert preset["agent"]["init_alpha"] == 0.1 and preset["reward_model"]["output"] == "linear"
    for arm in ("pebble_early", "pebble_bpref_spacing"):
        assert compose_config(fe.overrides("halfcheetah", arm, 1000, 2000, "0"))["agent"]["init_alpha"] == 1.0, arm


def test_every_addons_cell_composes_and_differs_from_pebble_only_by_its_switch():
    """experiments/addons.py (issue 18): each study's cells compose at 100k steps in fp32 with the study's teacher and
    budget, and each add-on arm changes PEBBLE's config in its own switch's keys (and its tag) only."""
    import addons

    for study, (_, budget, arms, reference) in addons.STUDIES.items():
        cells = cells_of(study)
        assert set(cells) == set(arms) | {reference}, study
        for cfg in cells.values():
            assert (cfg["steps"], cfg["precision"], cfg["threads"], cfg["seed"]) == (100_000, "fp32", 1, 0)
            assert (cfg["feedback"]["max_feedback"], cfg["feedback"]["mb_size"]) == (budget, budget // 10)
        base = flatten(cells["pebble"])
        assert base["teacher.name"] == "scripted" and base["teacher.mistake"] == (0.3 if study == "noise" else 0)
        for arm in set(arms) - {"pebble"}:
            changed = {k for k, v in flatten(cells[arm]).items() if base.get(k) != v} - {"tag"}
            switch = {o.split("=")[0] for o in addons.ARMS[arm]}
            assert changed and changed <= switch, (study, arm, changed)
    oracle = flatten(cells_of("noise")["pebble_oracle"])
    assert oracle["teacher.mistake"] == 0


def cells_of(study: str) -> dict:
    """Each cell of an addons.py study (seed 0), composed, by its tag."""
    import addons

    from helpers import compose_config

    return {next(a for a in c if a.startswith("tag="))[4:]: compose_config(c) for c in addons.cells(study, "0")}


RUNTIME_KEYS = {"progress", "logger.wandb.tags", "logger.wandb.group"}  # set by the launcher, not by the arm


def _archived_runs():
    from common import ARCHIVE

    return sorted(ov.parent.parent for ov in ARCHIVE.rglob(".hydra/overrides.yaml"))


def _folder(overrides: list[str]) -> str:
    """The folder hydra names a sweep's run by (conf/config.yaml's hydra.sweep.subdir)."""
    import yaml

    from pbrl.train import _run_name

    hydra = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["hydra"]
    exclude = set(hydra["job"]["config"]["override_dirname"]["exclude_keys"])
    return _run_name(",".join(sorted(o for o in overrides if o.split("=")[0] not in exclude)))


def test_each_feedback_efficiency_arm_still_names_its_archived_runs():
    """feedback_efficiency.py's arm, budget, steps and seed give the archived run's own folder: a rerun finds it."""
    import feedback_efficiency as fe
    import yaml

    runs = [r for r in _archived_runs() if r.parts[-4] == "feedback_efficiency"]
    assert len(runs) >= 20
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        task = run.parts[-3].removesuffix("_ppo")
        mine = fe.overrides(task, cfg["tag"], cfg["feedback"]["max_feedback"], cfg["steps"], str(cfg["seed"]))
        mine = [o if o.lower() != "snapshot.keep=true" else "snapshot.keep=True" for o in mine]  # as the sweeper writes
        assert _folder(mine) == run.name, (
            cfg["tag"], run.name)


def test_every_archived_run_is_what_its_folders_overrides_compose_to_today():
    """A rerun of a study skips each archived run as done, so the overrides its folder is named by must still compose
    into the config it ran. When a preset's default changes under an arm, the arm pins the old value (as
    pebble_early does reward_model.output=tanh) and the run is renamed, its run.json saying so. Keys added since a
    run are not compared; ``precision: auto`` matches a pinned value where the run's summary says it used that."""
    import json

    import yaml
    from common import compose

    for run in _archived_runs():
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        assert _folder(overrides) == run.name, run
        ran = flatten(yaml.safe_load((run / "config.yaml").read_text()))
        now = flatten(compose([o for o in overrides if not o.startswith("hydra.")])[0])
        used = json.loads((run / "summary.json").read_text()).get("precision_used")
        drift = {k: (v, now[k]) for k, v in ran.items()
                 if k in now and k not in RUNTIME_KEYS and v != now[k] and not (k == "precision" and v == "auto"
                                                                                and now[k] == used)}
        assert not drift, f"{run.relative_to(run.parents[3])}: ran {drift} (ran, composes to now)"


def test_addons_names_the_allowed_arms_for_an_unknown_one(capsys, monkeypatch):
    import addons

    monkeypatch.setattr(sys, "argv", ["addons.py", "--arms", "pebble,surff", "--report-only"])
    with pytest.raises(SystemExit):
        addons.main()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("--arms: unknown surff; allowed: pebble, pebble_oracle, qpa, rime, rune, surf"), err


def test_a_bpref_variant_is_the_presets_pebble_arm_with_its_overrides_and_the_two_arms_keep_their_runs():
    """bpref_benchmark.py --variant: one PEBBLE run per seed that differs from the task's PEBBLE arm only in the
    variant's keys (and its tag); the task's own two arms still name the runs archived under them."""
    import bpref_benchmark as bb

    from helpers import compose_config

    for task in bb.TASKS:
        pebble, sac = (compose_config([o.replace("oracle,none", t) for o in bb.arms(task, "0", 300_000)])
                       for t in ("oracle", "none"))
        assert (pebble["teacher"]["name"], sac["teacher"]["name"]) == ("scripted", "none")
        for variant, overrides in bb.VARIANTS.items():
            arm = bb.arms(task, "0", 300_000, variant)
            assert "teacher=oracle" in arm and not any("," in o for o in arm)  # one run per seed, never SAC-true
            changed = {k for k, v in flatten(compose_config(arm)).items() if flatten(pebble).get(k) != v}
            assert changed == {"tag"} | {o.split("=")[0] for o in overrides}, (task, variant, changed)
    runs = [r for r in _archived_runs() if r.parts[-3] == "bpref_benchmark"]
    assert len(runs) >= 8  # walker-walk 3 seeds and cheetah-run 1 seed, both arms
    sweeps = {bb.sweep_dir(t, v).name: (t, v) for t in bb.TASKS for v in (None, *bb.VARIANTS)}
    for run in runs:
        named = dict(part.split("=", 1) for part in run.name.split(","))
        assert run.parent.name in sweeps, f"{run.parent.name}: no task or variant of bpref_benchmark.py runs there"
        task, variant = sweeps[run.parent.name]
        overrides = bb.arms(task, named["seed"], int(named["steps"]), variant)
        assert _folder([o.replace("oracle,none", named["teacher"]) for o in overrides]) == run.name
    assert any(sweeps[r.parent.name][1] for r in runs)  # a variant's run (cheetah-run's linear) was checked too


def test_bpref_benchmark_names_the_allowed_variants_for_an_unknown_one(capsys, monkeypatch):
    import bpref_benchmark as bb

    monkeypatch.setattr(sys, "argv", ["bpref_benchmark.py", "--variant", "lineer", "--report-only"])
    with pytest.raises(SystemExit):
        bb.main()
    assert "--variant: invalid choice: 'lineer' (choose from 'linear')" in capsys.readouterr().err
