"""The PEBBLE add-ons as switches (issue 18): RUNE, QPA's batches and crops, RIME, SURF's pseudo-labels."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from helpers import CONF_DIR, tiny_config

from pbrl.errors import ConfigError
from pbrl.reward.model import RewardModel, RewardModelConfig
from pbrl.reward.rune import RuneReward, agent_reward
from pbrl.reward.source import LearnedReward
from pbrl.workspace import Workspace

pytestmark = pytest.mark.usefixtures("one_thread")

# a tiny PEBBLE run on Pendulum: rounds at 300, 500, 700 (after 200 seed and 100 pretraining steps)
PEBBLE = ["steps=900", "seed_steps=200", "pretrain.steps=100", "feedback.num_interact=200", "feedback.mb_size=10",
          "feedback.max_feedback=30", "feedback.segment=20", "reward_model.hidden_dim=32", "reward_model.epochs=3"]
PPO = ["agent=ppo", "agent.n_envs=2", "agent.n_steps=64", "agent.batch_size=64", "agent.n_epochs=1", "seed_steps=0"]


def _model(scale: float = 1.0) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel(3, 1, RewardModelConfig(ensemble_size=3, hidden_dim=16, depth=2, scale=scale))


def test_rune_adds_beta_t_times_the_ensembles_std_and_beta_decays_as_configured():
    model, step = _model(scale=2.0), [0]
    rune = RuneReward(LearnedReward(model, lambda: 1), beta=0.05, decay=1e-5, step=lambda: step[0])
    obs, action = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    members = model.member_rewards(obs, action).detach().numpy()  # [E, B]
    for t in (0, 1, 100_000):
        step[0] = t
        beta = 0.05 * (1 - 1e-5) ** t
        assert rune.beta_at(t) == pytest.approx(beta)
        expected = 2.0 * members.mean(0) + beta * members.std(0)  # np.std: the population std, as RUNE's code
        np.testing.assert_allclose(rune(obs, action).numpy(), expected, rtol=1e-5, atol=1e-6)
        mean, bonus = rune.parts(obs, action)
        np.testing.assert_allclose(bonus.numpy(), beta * members.std(0), rtol=1e-5, atol=1e-7)
    assert rune.beta_at(100_000) == pytest.approx(0.05 * math.exp(-1), rel=1e-4)  # (1 - 1e-5)^1e5 ~ 1/e
    untrained = RuneReward(LearnedReward(model, lambda: 0), beta=0.05, decay=1e-5, step=lambda: 0)
    assert not untrained(obs, action).any()  # no bonus before the model has learned anything


@pytest.mark.parametrize("override, field", [("reward.bonus=curiosity", "reward.bonus"),
                                             ("reward.rune_beta=-1", "reward.rune_beta"),
                                             ("reward.rune_decay=1.5", "reward.rune_decay")])
def test_bad_bonus_settings_name_the_field(override, field):
    cfg = tiny_config("reward.bonus=rune", override)
    with pytest.raises(ConfigError) as err:
        agent_reward(cfg, LearnedReward(_model(), lambda: 0), lambda: 0)
    assert err.value.field == field


def test_a_bonus_without_a_teacher_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="reward.bonus"):
        Workspace(tiny_config("teacher=none", "reward.bonus=rune"), tmp_path / "run")


def test_sac_trains_on_the_rune_reward_of_every_sampled_batch(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "reward.bonus=rune", "reward.rune_beta=0.5"), tmp_path / "run")
    rune = ws.feedback.agent_reward
    assert isinstance(rune, RuneReward)
    checked = []
    update = ws.agent.update

    def watched(batch):
        if ws.feedback.learner.trained and ws.step % 50 == 0:  # after the first round: the critic's reward
            expected = rune(batch.obs, batch.action)
            torch.testing.assert_close(batch.reward, expected)
            mean, bonus = rune.parts(batch.obs, batch.action)
            assert (bonus > 0).all()  # three members never agree exactly
            checked.append(ws.step)
        return update(batch)

    ws.agent.update = watched
    summary = ws.train()
    assert len(checked) >= 8 and summary["labels"] == 30
    assert math.isfinite(summary["final_eval_return"])


def test_a_rune_runs_episodes_log_the_reward_models_return_not_the_zeros_sac_stores(tmp_path):
    """RUNE's reward is computed per sampled batch, so SAC stores 0 for each step; episodes.csv's learned_return is
    the reward model's return over the stored episode (NaN for one that ended before the first round), as for PPO."""
    ws = Workspace(tiny_config(*PEBBLE, "reward.bonus=rune"), tmp_path / "run")
    ws.train()
    with open(tmp_path / "run" / "episodes.csv") as f:
        episodes = {int(r["env_step"]): float(r["learned_return"]) for r in csv.DictReader(f)}
    assert sorted(episodes) == [200, 400, 600, 800]  # Pendulum's 200-step episodes; rounds at 300, 500, 700
    assert math.isnan(episodes[200])  # ended before the first round: no learned reward yet
    assert all(math.isfinite(episodes[s]) and episodes[s] != 0.0 for s in (400, 600, 800))
    rows = ws.store.episode_rows(3)  # the last episode, ended after the last round: the model's return, recomputed
    expected = ws.feedback.learned_return(ws.store.obs[rows], ws.store.action[rows])
    assert episodes[800] == pytest.approx(expected, rel=1e-5)


def test_prefppo_asks_its_rollout_rewards_from_the_rune_source(tmp_path):
    ws = Workspace(tiny_config(*PPO, *PEBBLE, "reward.bonus=rune", "reward.rune_beta=0.5"), tmp_path / "run")
    rune = ws.feedback.agent_reward
    seen = []
    rollout = ws.agent._rollout_rewards

    def watched(reward, obs, actions):
        out = rollout(reward, obs, actions)
        if reward is rune and rune.version:
            flat = out.reshape(-1)
            torch.testing.assert_close(flat, rune(obs.reshape(len(flat), -1), actions.reshape(len(flat), -1)))
            seen.append(ws.step)
        return out

    ws.agent._rollout_rewards = watched
    ws.train()
    assert seen  # at least one update after the first round used the bonus


class _Version:
    """A stand-in reward source that has (or has not yet) been trained."""

    per_batch, from_env = False, False

    def __init__(self, version: int):
        self.version = version


def _filled_sac(fraction: float, window: int, capacity: int = 500, stored: int = 800):
    from pbrl.agents.sac import SAC, SACConfig

    agent = SAC(1, 1, SACConfig(hidden_dim=8, batch_size=64, recent_fraction=fraction, recent_window=window),
                capacity=capacity)
    for i in range(stored):  # obs = the transition's index: the ring wraps past capacity
        agent.buffer.add(np.array([i], np.float32), np.zeros(1, np.float32), 0.0, False, np.zeros(1, np.float32))
    return agent


def test_recent_batches_come_from_the_newest_window_even_after_the_ring_wraps():
    agent = _filled_sac(0.5, window=100)
    newest = agent.buffer.sample_recent(4000, window=100).obs.reshape(-1)
    assert newest.min() >= 700 and newest.max() == 799 and len(newest.unique()) == 100


def test_qpa_takes_part_of_each_batch_from_recent_steps_only_while_labels_are_collected():
    agent = _filled_sac(0.5, window=100)
    torch.manual_seed(0)
    batch = agent._sample(_Version(1)).obs.reshape(-1)
    assert len(batch) == 64 and (batch[32:] >= 700).all()  # the second half: the newest 100 of 800 stored
    assert (batch[:32] < 700).any()  # the first half: the whole buffer (300..799)
    assert not (agent._sample(_Version(0)).obs.reshape(-1) >= 700).all()  # no learned reward yet: uniform
    agent.labels_done = True  # set by the last reward change (the budget is used up)
    torch.manual_seed(0)
    assert (agent._sample(_Version(1)).obs.reshape(-1) < 700).sum() > 40  # uniform again: ~75 % older steps


def test_the_last_round_tells_the_agent_that_labels_are_done(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "agent.recent_fraction=0.5", "agent.recent_window=400"), tmp_path / "run")
    changes = []
    changed = ws.agent.reward_changed
    ws.agent.reward_changed = lambda change: (changes.append((ws.step, change.last)), changed(change))[1]
    ws.train()
    assert changes == [(300, False), (500, False), (700, True)]  # 30 labels in rounds of 10
    assert ws.agent.labels_done


@pytest.mark.parametrize("override, field", [("agent.recent_fraction=1.5", "agent.recent_fraction"),
                                             ("agent.recent_window=0", "agent.recent_window")])
def test_bad_recent_settings_name_the_field(tmp_path, override, field):
    with pytest.raises(ConfigError) as err:
        Workspace(tiny_config(override), tmp_path / "run")
    assert err.value.field == field


def test_rime_trusts_and_flips_exactly_the_labels_its_thresholds_name():
    from pbrl.reward.rime import RimeConfig, RimeSelector

    rime = RimeSelector(RimeConfig())
    # first epoch: the running max starts at 0, so the trust threshold is -ln(1e-8) + min(3 x 1, 3) ~ 21.4
    first = np.array([0.1, 0.2, 0.3, 8.0])
    trusted, flipped = rime.select(first, equal=np.zeros(4, bool))
    assert trusted.all() and flipped.tolist() == [False, False, False, True]  # 8.0 > -ln(0.001) = 6.91
    assert rime.max == pytest.approx(0.8) and rime.var == pytest.approx(first.var())  # max moves 10 % of the way
    # second epoch: -ln(0.8) + 0.5 x 0.8 + min(beta_1 x var, 3), beta_1 = 3 - 2/60
    threshold = -math.log(0.8) + 0.4 + min((3 - 2 / 60) * first.var(), 3.0)
    assert rime.threshold() == pytest.approx(threshold)
    losses = np.array([threshold - 0.01, threshold + 0.01, 7.5, 0.05])
    trusted, flipped = rime.select(losses, equal=np.array([False, False, True, False]))
    assert trusted.tolist() == [True, False, False, True]
    assert flipped.tolist() == [False, False, False, False]  # 7.5 is above the flip line but "equal": never flipped
    assert rime.beta() == pytest.approx(3 - 2 * 2 / 60)
    rime.epochs = 1000
    assert rime.beta() == 1.0  # the floor, beta_min


def test_rime_epochs_train_on_the_trusted_labels_and_the_flipped_ones_reversed(monkeypatch):
    from pbrl.reward import model as model_module
    from pbrl.reward.labels import LabelSet

    class Chosen:  # trusts labels 0 and 1, flips 2, drops 3
        cfg = type("C", (), {"min_epochs": 0})()
        last = {}

        def select(self, losses, equal):
            return np.array([True, True, False, False]), np.array([False, False, True, False])

    labels = LabelSet(2, 5, 3, 1)
    labels.add(np.random.rand(4, 2, 5, 3), np.random.rand(4, 2, 5, 1), [[0, 1], [0, 1], [0, 1], [1, 0]],
               np.zeros(4, bool))
    model = RewardModel(3, 1, RewardModelConfig(ensemble_size=1, hidden_dim=8, depth=1, epochs=1, batch_size=16))
    seen = []
    loss = model_module.preference_loss
    monkeypatch.setattr(model_module, "preference_loss",
                        lambda scores, ranking, equal: (seen.append(ranking.reshape(-1, 2).tolist()),
                                                        loss(scores, ranking, equal))[1])
    model.fit(labels, torch.Generator().manual_seed(0), selector=Chosen())
    rows = sorted(r for batch in seen for r in batch)
    assert rows == [[0, 1], [0, 1], [1, 0]]  # labels 0 and 1 as given, 2 reversed, 3 left out
    assert labels.ranking.tolist() == [[0, 1], [0, 1], [0, 1], [1, 0]]  # the label set itself is untouched


def test_rime_in_a_run_with_a_noisy_teacher_logs_what_it_kept(tmp_path):
    import csv

    ws = Workspace(tiny_config(*PEBBLE, "teacher=mistake", "teacher.mistake=0.3", "reward_model.robust=rime",
                               "reward_model.rime.min_epochs=2"), tmp_path / "run")
    ws.train()
    with open(tmp_path / "run" / "rounds.csv") as f:
        rounds = list(csv.DictReader(f))
    assert len(rounds) == 3 and all(int(r["rime_trusted"]) + int(r["rime_flipped"]) > 0 for r in rounds)
    assert ws.feedback.learner.selector.epochs >= 3 * 3  # at least min_epochs + 1 per round
    assert len(ws.feedback.learner.labels) == 30  # filtering never removes a label from the set


@pytest.mark.parametrize("override, field", [("reward_model.robust=median", "reward_model.robust"),
                                             ("+reward_model.rime.nosuch=1", "reward_model.rime.nosuch"),
                                             ("reward_model.rime.flip_tau=2", "reward_model.rime.flip_tau")])
def test_bad_rime_settings_name_the_field(tmp_path, override, field):
    cfg = [*PEBBLE, "reward_model.robust=rime", override] if "robust=median" not in override else [*PEBBLE, override]
    with pytest.raises(ConfigError) as err:
        Workspace(tiny_config(*cfg), tmp_path / "run")
    assert err.value.field == field


def test_rime_needs_pairs(tmp_path):
    with pytest.raises(ConfigError, match="query.k=2"):
        Workspace(tiny_config(*PEBBLE, "reward_model.robust=rime", "query.k=3"), tmp_path / "run")


def test_crops_share_a_length_per_query_stay_inside_the_segment_and_are_contiguous():
    from pbrl.reward.crop import Crop

    crop = Crop(crops=20, shorten_min=5, shorten_max=15)
    masks = crop.masks(n=64, k=2, length=50, generator=torch.Generator().manual_seed(0))  # [C, n, K, T]
    assert masks.shape == (20, 64, 2, 50)
    lengths = masks.sum(-1)  # [C, n, K]
    assert (lengths[..., 0] == lengths[..., 1]).all()  # the pair's two segments: one crop length
    assert lengths.min() >= 35 and lengths.max() <= 45 and len(lengths.unique()) == 11  # S-15 .. S-5, all of them
    steps = masks.diff(dim=-1).abs().sum(-1)  # a contiguous window switches on and off at most once each
    assert (steps <= 2).all()
    starts = masks.argmax(-1)
    assert not (starts[..., 0] == starts[..., 1]).all()  # each segment its own start


def test_cropped_scores_sum_each_members_rewards_over_its_crop():
    from pbrl.reward.crop import Crop

    crop = Crop(crops=3)
    rewards = torch.randn(2, 4, 2, 50)  # [E, p, K, T]
    masks = crop.masks(2 * 4, 2, 50, torch.Generator().manual_seed(1)).reshape(3, 2, 4, 2, 50).transpose(0, 1)
    scores = crop.scores(rewards, masks)  # [E, C*p, K]
    assert scores.shape == (2, 12, 2)
    for e in range(2):
        for c in range(3):
            torch.testing.assert_close(scores[e, c * 4:(c + 1) * 4], (rewards[e] * masks[e, c]).sum(-1))


def test_a_run_with_qpa_crops_trains_and_bad_crop_settings_name_the_field(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "reward_model.crop=qpa", "reward_model.crop_settings.crops=4"),
                   tmp_path / "run")
    summary = ws.train()
    assert ws.feedback.learner.crop.crops == 4 and summary["labels"] == 30
    assert 0 <= summary["reward_train_acc"] <= 1
    for override, field in (("reward_model.crop=mixup", "reward_model.crop"),
                            ("reward_model.crop_settings.shorten_min=30", "reward_model.crop_settings.shorten_min")):
        with pytest.raises(ConfigError) as err:
            Workspace(tiny_config(*PEBBLE, "reward_model.crop=qpa", override), tmp_path / "bad")
        assert err.value.field == field


SWITCHES = {"surf": ["reward_model.semi=true", "reward_model.surf.inv_label_ratio=5", "reward_model.surf.mu=1"],
            "rune": ["reward.bonus=rune"], "rime": ["reward_model.robust=rime", "reward_model.rime.min_epochs=1"],
            "qpa_crop": ["reward_model.crop=qpa", "reward_model.crop_settings.crops=2", "feedback.last_episodes=10"]}


@pytest.mark.parametrize("switch", SWITCHES)
@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_every_switch_composes_with_sac_and_ppo(tmp_path, switch, agent):
    ws = Workspace(tiny_config(*(PPO if agent == "ppo" else []), *PEBBLE, "steps=500", *SWITCHES[switch]),
                   tmp_path / "run")
    summary = ws.train()
    assert summary["labels"] == 20 and math.isfinite(summary["final_eval_return"])  # rounds at 300 and 500


@pytest.mark.parametrize("switch", SWITCHES)
def test_every_switch_composes_with_a_persons_teacher(tmp_path, switch):
    ws = Workspace(tiny_config(*PEBBLE, "teacher=human", "teacher.serve=false", *SWITCHES[switch]), tmp_path / "run")
    try:
        learner = ws.feedback.learner
        assert (learner.selector is not None, learner.crop is not None) == (switch == "rime", switch == "qpa_crop")
    finally:
        ws.feedback.close()
        ws.envs.close()


# every teacher preset but a person (tested above) and none (no labels): a new preset joins by itself
SCRIPTED_TEACHERS = sorted({p.stem for p in (CONF_DIR / "teacher").glob("*.yaml")} - {"human", "none"})


def _switched_on(ws: Workspace, switch: str) -> bool:
    learner = ws.feedback.learner
    return {"surf": learner.pool is not None, "rune": isinstance(ws.feedback.agent_reward, RuneReward),
            "rime": learner.selector is not None, "qpa_crop": learner.crop is not None}[switch]


@pytest.mark.parametrize("teacher", SCRIPTED_TEACHERS)
@pytest.mark.parametrize("switch", SWITCHES)
def test_every_switch_composes_with_every_scripted_teacher(tmp_path, switch, teacher):
    extra = ["env=hopper"] if teacher == "backflip_oracle" else []
    ws = Workspace(tiny_config(*PEBBLE, f"teacher={teacher}", *extra, *SWITCHES[switch]), tmp_path / "run")
    try:
        assert _switched_on(ws, switch) and all(_switched_on(ws, other) is False for other in SWITCHES
                                                if other != switch)
    finally:
        ws.feedback.close()
        ws.envs.close()


def test_rime_warm_start_targets_the_bonus_standardised_over_its_largest_value():
    from pbrl.reward.rime import RimeConfig, RimeWarmStart

    warm = RimeWarmStart(RimeConfig(), k=5, device=torch.device("cpu"))
    d = torch.tensor([1.0, 2.0, 3.0, 6.0])
    target = warm.target(d)
    z = (d - d.mean()) / d.std(unbiased=False)  # the first batch: the running statistics are the batch's
    torch.testing.assert_close(target, z / z.abs().max(), atol=1e-3, rtol=1e-3)
    assert target.abs().max() == pytest.approx(1.0, abs=1e-3)


def test_rime_warm_start_fits_the_reward_model_to_the_bonus_during_pretraining(tmp_path):
    from pbrl.intrinsic.state_entropy import knn_distance

    ws = Workspace(tiny_config("steps=500", "seed_steps=200", "pretrain.steps=300", "feedback.max_feedback=0",
                               "reward_model.hidden_dim=32", "reward_model.robust=rime",
                               "reward_model.rime.warm_start_batch=64"), tmp_path / "run")
    ws.train()
    warm = ws.feedback.learner.warm_start
    assert warm.steps == 300 * 5  # 5 updates after each of the 300 pretraining steps, none after
    obs, action = ws.store.observations(), ws.store.actions()
    learned = ws.feedback.learner.model.reward(obs, action)
    bonus = knn_distance(obs, obs, 5)
    assert np.corrcoef(learned.numpy(), bonus.numpy())[0, 1] > 0.5  # the model tracks the exploration bonus


def test_surf_pseudo_labels_only_confident_pairs_each_member_its_own():
    from pbrl.reward.surf import SurfConfig, UnlabelledPool

    pool = UnlabelledPool(SurfConfig(threshold=0.9, lambda_u=2.0), k=2, length=5)
    # member 0: pair 0 confident for segment 0 (p = 0.95), pair 1 not (0.6); member 1: pair 0 confident for segment 1
    scores = torch.tensor([[[math.log(19.0), 0.0], [math.log(1.5), 0.0]],
                           [[0.0, math.log(19.0)], [0.0, 0.0]]], requires_grad=True)
    loss, kept = pool.loss(scores)
    assert kept.item() == 0.5  # two of four (member, pair) cells pass the 0.9 threshold
    expected = 2.0 * (-math.log(0.95) * 2) / 4  # lambda_u x masked CE, averaged over every cell, masked ones as 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert scores.grad[:, 1].abs().sum() == 0  # the unconfident pairs give no gradient


def test_surf_pool_grows_with_the_rounds_and_never_joins_the_labels(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "reward_model.semi=true", "reward_model.surf.inv_label_ratio=4",
                               "reward_model.surf.threshold=0.6", "reward_model.surf.mu=2"), tmp_path / "run")
    fits = []
    fit = ws.feedback.learner.model.fit
    ws.feedback.learner.model.fit = lambda *a: (fits.append(fit(*a)), fits[-1])[1]
    ws.train()
    learner = ws.feedback.learner
    assert len(learner.pool) == 30 * 4 and len(learner.labels) == 30  # 4 unlabelled pairs per query asked
    episodes = ws.store.episode[learner.pool.rows]  # [M, 2, T]: a segment never crosses an episode end
    assert (episodes == episodes[..., :1]).all()
    assert all(0 <= f["surf_kept"] <= 1 for f in fits) and any(f["surf_kept"] > 0 for f in fits)


def test_surf_crops_queries_longer_segments_the_teacher_judges_by_their_centre(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "reward_model.crop=surf", "reward_model.semi=true",
                               "reward_model.surf.inv_label_ratio=2", "reward_model.surf.mu=1"), tmp_path / "run")
    judged = []
    teacher = ws.feedback.learner.teacher
    ask = teacher.ask
    teacher.ask = lambda queries, info: (judged.append(queries.index.copy()), ask(queries, info))[1]
    ws.train()
    learner = ws.feedback.learner
    assert (learner.crop.crops, learner.crop.shorten_min, learner.crop.shorten_max) == (1, 5, 15)
    assert learner.labels.length == 30 and learner.pool.rows.shape[-1] == 30  # segment 20 + 2 x window 5
    assert all(index.shape[-1] == 20 for index in judged)  # the teacher saw the centre 20 steps
    first = judged[0]  # the oracle skips nothing: the first round's labels are its queries, in order
    np.testing.assert_array_equal(learner.labels.obs[:len(first), :, 5:25], ws.store.obs[first])


def test_surf_crop_lengths_are_the_segment_plus_minus_its_range():
    from pbrl.reward.crop import make_crop

    crop = make_crop({"crop": "surf", "crop_settings": {"window": 5, "range": 5}}, length=50)
    masks = crop.masks(n=500, k=2, length=60, generator=torch.Generator().manual_seed(0))
    lengths = masks.sum(-1)
    assert lengths.min() == 45 and lengths.max() == 55  # SURF: segment 50 +- crop_range 5 out of 60 stored


def test_surf_pseudo_labels_come_from_the_label_scores_when_given():
    from pbrl.reward.surf import SurfConfig, UnlabelledPool

    pool = UnlabelledPool(SurfConfig(threshold=0.9), k=2, length=5)
    cropped = torch.zeros(1, 1, 2, requires_grad=True)  # the crop cannot tell the segments apart
    centre = torch.tensor([[[0.0, 5.0]]])  # the centre window prefers segment 1, p = 0.993
    loss, kept = pool.loss(cropped, centre)
    assert kept.item() == 1.0 and loss.item() == pytest.approx(math.log(2))  # CE of (0.5, 0.5) against label 1
    loss.backward()
    assert cropped.grad[0, 0, 1] < 0  # pushes the cropped score towards segment 1


def test_surf_crop_refuses_a_persons_teacher(tmp_path):
    with pytest.raises(ConfigError, match="crop=qpa or none"):
        Workspace(tiny_config(*PEBBLE, "teacher=human", "teacher.serve=false", "reward_model.crop=surf"),
                  tmp_path / "run")
