"""Tests for pbrl/reward/model.py and pbrl/reward/labels.py (plus ReplayBuffer.relabel with a model).

Labels come from a known reward, r(s, a) = obs[..., 0], so what the model should learn is known.
Networks are tiny (32 units, 2 layers) and every run is seeded (torch.manual_seed for the weights,
a torch.Generator for fit's shuffles).
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from pbrl.buffers.replay import ReplayBuffer
from pbrl.reward.labels import LabelSet
from pbrl.reward.model import RewardModel, RewardModelConfig

OBS_DIM, ACTION_DIM, LENGTH = 3, 1, 5


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def _model(seed: int = 0, **kw) -> RewardModel:
    cfg = dict(ensemble_size=3, hidden_dim=32, depth=2, lr=3e-3, batch_size=64, epochs=60, stop_accuracy=0.97)
    cfg.update(kw)
    torch.manual_seed(seed)
    return RewardModel(OBS_DIM, ACTION_DIM, RewardModelConfig(**cfg))


def _queries(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random queries of ``k`` segments: (obs, action, true rankings by sum of obs[..., 0])."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, k, LENGTH, OBS_DIM)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, k, LENGTH, ACTION_DIM)).astype(np.float32)
    ranking = np.argsort(-obs[..., 0].sum(-1), axis=1)
    return obs, action, ranking


def _labels(n: int, k: int, seed: int) -> LabelSet:
    obs, action, ranking = _queries(n, k, seed)
    labels = LabelSet(k, LENGTH, OBS_DIM, ACTION_DIM)
    labels.add(obs, action, ranking, np.zeros(n, bool))
    return labels


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(model: RewardModel) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.net.parameters()]


# ------------------------------------------------------------------------------- learning
def test_fit_learns_a_known_linear_reward():
    """Pairs labelled by r = obs[..., 0]: train accuracy > 0.9 and the learned reward correlates > 0.8 with r."""
    model = _model()
    labels = _labels(256, 2, seed=0)
    before = model.accuracy(labels)
    stats = model.fit(labels, _gen())
    assert stats["reward_train_acc"] > 0.9 and stats["reward_epochs"] >= 1
    assert model.accuracy(labels) > 0.9 > before
    held_out = _labels(200, 2, seed=1)
    assert model.accuracy(held_out) > 0.85
    rng = np.random.default_rng(2)
    obs = torch.as_tensor(rng.uniform(-1, 1, (2000, OBS_DIM)), dtype=torch.float32)
    action = torch.as_tensor(rng.uniform(-1, 1, (2000, ACTION_DIM)), dtype=torch.float32)
    reward = model.reward(obs, action)
    assert reward.shape == (2000,) and reward.abs().max() <= 1.0  # tanh-squashed
    corr = np.corrcoef(reward.numpy(), obs[:, 0].numpy())[0, 1]
    assert corr > 0.8, corr


def test_softplus_output_is_never_negative_and_learns_the_same_ranking():
    """output=softplus: every member's per-step reward is softplus(raw) >= 0, and fitting still recovers r = obs[..., 0]."""
    model = _model(output="softplus")
    rng = np.random.default_rng(2)
    obs = torch.as_tensor(rng.uniform(-1, 1, (2000, OBS_DIM)), dtype=torch.float32)
    action = torch.as_tensor(rng.uniform(-1, 1, (2000, ACTION_DIM)), dtype=torch.float32)
    with torch.no_grad():
        raw = model.net(torch.cat([obs, action], -1))[..., 0]  # [E, N]
    torch.testing.assert_close(model.member_rewards(obs, action), torch.nn.functional.softplus(raw))
    model.fit(_labels(256, 2, seed=0), _gen())
    assert model.accuracy(_labels(200, 2, seed=1)) > 0.85
    members = model.member_rewards(obs, action)
    assert members.min() >= 0 and members.max() > 1.0  # non-negative, and not bounded by 1 as tanh is
    corr = np.corrcoef(model.reward(obs, action).numpy(), obs[:, 0].numpy())[0, 1]
    assert corr > 0.8, corr


def test_fit_stops_early_once_accuracy_exceeds_the_threshold():
    """fit reports the epochs it ran; a low stop_accuracy ends the round long before `epochs`."""
    labels = _labels(128, 2, seed=3)
    quick = _model(stop_accuracy=0.6).fit(labels, _gen())
    assert quick["reward_train_acc"] > 0.6 and quick["reward_epochs"] < 60
    full = _model(stop_accuracy=1.0, epochs=3).fit(labels, _gen())
    assert full["reward_epochs"] == 3
    # its matmul work, for the floor in experiments/bench_pebble.py: rows x members x multiply-adds x 6
    macs = (OBS_DIM + ACTION_DIM) * 32 + 32 * 32 + 32
    assert full["reward_fit_gflop"] * 1e9 == pytest.approx(3 * 128 * 2 * LENGTH * 3 * macs * 6)
    assert full["reward_fit_s"] > 0


def test_fit_in_several_passes_per_minibatch_equals_one_pass(monkeypatch):
    """Splitting a minibatch into cache-sized passes sums to the same gradient: same weights after fit."""
    import pbrl.reward.model as reward_model

    labels = _labels(100, 2, seed=4)
    results = []
    for rows in (10**6, 30):  # one pass per minibatch, then 3 queries (30 rows) per pass
        monkeypatch.setattr(reward_model, "CPU_ROWS_PER_PASS", rows)
        model = _model(epochs=3, stop_accuracy=2.0)
        stats = model.fit(labels, _gen(5))
        results.append((stats, _params(model)))
    (one, params_one), (many, params_many) = results
    assert model.queries_per_pass(2 * LENGTH) == 3
    for a, b in zip(params_one, params_many):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert many["reward_train_acc"] == one["reward_train_acc"]
    assert many["reward_loss"] == pytest.approx(one["reward_loss"], rel=1e-5)
    assert any((a - b).abs().max() > 0 for a, b in zip(params_one, _params(_model())))  # training moved them


def test_fit_is_deterministic_given_seeds():
    """Same init seed and same generator seed: bit-identical weights after fit."""
    labels = _labels(100, 2, seed=4)
    a, b = _model(epochs=3), _model(epochs=3)
    a.fit(labels, _gen(5))
    b.fit(labels, _gen(5))
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))


def _identical_members(model: RewardModel) -> None:
    """Copy member 0's weights into every member."""
    with torch.no_grad():
        for p in model.net.parameters():
            p.copy_(p[:1].expand_as(p))


def test_each_member_trains_on_its_own_shuffle():
    """Members that start identical end up different after one epoch of minibatches (each saw its own order),
    but stay identical when one batch holds every label (order cannot matter); one update per batch."""
    labels = _labels(100, 2, seed=6)
    minibatched = _model(epochs=1, batch_size=10)
    _identical_members(minibatched)
    minibatched.fit(labels, _gen(7))
    assert minibatched.updates == 10
    w = minibatched.net.weights[0]
    assert (w[1] - w[0]).abs().max() > 1e-3 and (w[2] - w[1]).abs().max() > 1e-3 and (w[2] - w[0]).abs().max() > 1e-3

    one_batch = _model(epochs=1, batch_size=128)
    _identical_members(one_batch)
    one_batch.fit(labels, _gen(7))
    assert one_batch.updates == 1
    for p in one_batch.net.parameters():
        torch.testing.assert_close(p[1], p[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(p[2], p[0], atol=1e-5, rtol=0)


def test_members_start_different():
    """The ensemble's members are initialised independently (disagreement needs that)."""
    model = _model()
    for p in model.net.parameters():
        assert (p[0] - p[1]).abs().max() > 1e-3 and (p[1] - p[2]).abs().max() > 1e-3


def _mean_gap(model: RewardModel, labels: LabelSet) -> float:
    obs, action, _, _ = labels.tensors(None, torch.device("cpu"))
    with torch.no_grad():
        scores = model.segment_scores(obs, action)  # [E, N, 2]
    return float((scores[..., 0] - scores[..., 1]).abs().mean())


def test_equal_labels_pull_the_two_segment_scores_together():
    """Train "first better" until the scores are far apart, then the same pairs labelled equal close the gap."""
    obs, action, _ = _queries(64, 2, seed=8)
    obs[:, 0, :, 0] = np.abs(obs[:, 0, :, 0])  # segment 0 always has the higher true reward
    obs[:, 1, :, 0] = -np.abs(obs[:, 1, :, 0])
    ranked = LabelSet(2, LENGTH, OBS_DIM, ACTION_DIM)
    ranked.add(obs, action, np.tile([0, 1], (64, 1)), np.zeros(64, bool))
    model = _model(epochs=30, stop_accuracy=1.0)
    model.fit(ranked, _gen(9))
    gap_ranked = _mean_gap(model, ranked)
    assert gap_ranked > 2.0
    equal = LabelSet(2, LENGTH, OBS_DIM, ACTION_DIM)
    equal.add(obs, action, np.tile([0, 1], (64, 1)), np.ones(64, bool))
    stats = model.fit(equal, _gen(10))
    assert np.isnan(stats["reward_train_acc"]) and stats["reward_epochs"] == 30  # no ranked label: no early stop
    assert np.isnan(model.accuracy(equal))
    assert _mean_gap(model, equal) < 0.25 * gap_ranked


def test_rankings_of_three_train_with_plackett_luce():
    """K = 3 rankings: accuracy of the top choice rises from about chance to > 0.8; the full order is learned too."""
    model = _model()
    labels = _labels(256, 3, seed=11)
    held_out = _labels(200, 3, seed=12)
    before = model.accuracy(held_out)
    stats = model.fit(labels, _gen(13))
    assert stats["reward_train_acc"] > 0.85
    after = model.accuracy(held_out)
    assert before < 0.5 and after > 0.8, (before, after)
    obs, action, ranking, _ = held_out.tensors(None, torch.device("cpu"))
    with torch.no_grad():
        predicted = model.segment_scores(obs, action).mean(0).argsort(-1, descending=True)
    assert (predicted == ranking).all(-1).float().mean() > 0.6  # whole ranking (chance: 1/6), not just the best
    probs = model.choice_probs(obs, action)
    assert probs.shape == (3, 200, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 200))


def test_the_second_place_of_a_ranking_carries_signal():
    """Plackett-Luce uses the whole ranking: rankings that agree only on the worst segment still teach it."""
    obs, action, ranking = _queries(256, 3, seed=14)
    labels = LabelSet(3, LENGTH, OBS_DIM, ACTION_DIM)
    rng = np.random.default_rng(15)
    shuffled_top = ranking.copy()
    swap = rng.random(256) < 0.5
    shuffled_top[swap, 0], shuffled_top[swap, 1] = ranking[swap, 1], ranking[swap, 0]  # best two in random order
    labels.add(obs, action, shuffled_top, np.zeros(256, bool))
    model = _model(epochs=40, stop_accuracy=1.0)
    model.fit(labels, _gen(16))
    o, a, r = _queries(200, 3, seed=17)
    with torch.no_grad():
        worst = model.segment_scores(torch.as_tensor(o), torch.as_tensor(a)).mean(0).argmin(-1).numpy()
    assert (worst == r[:, 2]).mean() > 0.8


def test_reward_is_the_ensemble_mean_of_squashed_member_rewards():
    """model.reward = mean over members of tanh(member output); shapes follow the leading dims of obs."""
    model = _model()
    obs, action, _ = _queries(4, 2, seed=27)
    obs, action = torch.as_tensor(obs), torch.as_tensor(action)
    with torch.no_grad():
        members = model.member_rewards(obs, action)  # [E, 4, 2, T]
        raw = model.net(torch.cat([obs, action], -1).reshape(-1, OBS_DIM + ACTION_DIM))  # [E, 4*2*T, 1]
    assert members.shape == (3, 4, 2, LENGTH)
    torch.testing.assert_close(members, torch.tanh(raw).reshape(3, 4, 2, LENGTH))
    assert (members[0] - members[1]).abs().max() > 1e-3  # the mean below is not any single member
    reward = model.reward(obs, action)
    assert reward.shape == (4, 2, LENGTH)
    torch.testing.assert_close(reward, members.mean(0))
    scores = model.segment_scores(obs, action)  # [E, N, K]: summed per-step rewards
    torch.testing.assert_close(scores, members.sum(-1))


def test_scale_multiplies_the_agents_reward_but_not_what_the_model_trains_on():
    obs, action, _ = _queries(4, 2, seed=28)
    obs, action = torch.as_tensor(obs), torch.as_tensor(action)
    plain, scaled = _model(seed=3), _model(seed=3, scale=5.0)
    torch.testing.assert_close(scaled.reward(obs, action), 5.0 * plain.reward(obs, action))
    torch.testing.assert_close(scaled.segment_scores(obs, action), plain.segment_scores(obs, action))


# ------------------------------------------------------------------------------- relabel
def _filled_buffer(capacity: int, n: int) -> ReplayBuffer:
    rng = np.random.default_rng(18)
    buf = ReplayBuffer(capacity, OBS_DIM, ACTION_DIM)
    for t in range(n):
        buf.add(rng.uniform(-1, 1, OBS_DIM), rng.uniform(-1, 1, ACTION_DIM), 123.0, False, rng.uniform(-1, 1, OBS_DIM))
    return buf


@pytest.mark.parametrize("capacity,n", [(64, 45), (40, 95)], ids=["partial", "wrapped"])
def test_relabel_writes_the_current_models_reward_for_every_row(capacity, n):
    """relabel(model.reward, batch_size=7) writes exactly the model's predictions for every stored row, and only
    those; after another fit a relabel reflects the updated model."""
    buf = _filled_buffer(capacity, n)
    size = min(capacity, n)
    model = _model(epochs=2)

    def expected() -> np.ndarray:
        return np.array([model.reward(torch.from_numpy(buf.obs[i:i + 1]), torch.from_numpy(buf.action[i:i + 1]))
                         .item() for i in range(size)], np.float32)

    chunks = []

    def reward_fn(obs, action):
        chunks.append(len(obs))
        return model.reward(obs, action)

    buf.relabel(reward_fn, batch_size=7)
    assert chunks == [7] * (size // 7) + ([size % 7] if size % 7 else [])
    old = expected()
    np.testing.assert_allclose(buf.reward[:size], old, rtol=0, atol=1e-6)
    assert (buf.reward[size:] == 0).all()  # never-written slots untouched
    assert not np.isclose(buf.reward[:size], 123.0).any()

    model.fit(_labels(64, 2, seed=19), _gen(20))
    new = expected()
    assert np.abs(new - old).max() > 1e-3  # the model really changed
    buf.relabel(model.reward, batch_size=7)
    np.testing.assert_allclose(buf.reward[:size], new, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------- snapshots
def test_state_dict_round_trip_gives_identical_predictions_and_training():
    """A model restored from a saved state_dict predicts identically and keeps training identically (Adam state too)."""
    labels = _labels(64, 2, seed=21)
    model = _model(seed=0, epochs=3)
    model.fit(labels, _gen(22))
    blob = io.BytesIO()
    torch.save(model.state_dict(), blob)
    blob.seek(0)
    restored = _model(seed=1, epochs=3)  # different init
    obs, action, _ = _queries(50, 2, seed=23)
    obs, action = torch.as_tensor(obs), torch.as_tensor(action)
    assert not torch.equal(restored.reward(obs, action), model.reward(obs, action))
    restored.load_state_dict(torch.load(blob, weights_only=False))
    assert restored.updates == model.updates > 0
    assert torch.equal(restored.reward(obs, action), model.reward(obs, action))
    assert torch.equal(restored.choice_probs(obs, action), model.choice_probs(obs, action))
    model.fit(labels, _gen(24))
    restored.fit(labels, _gen(24))
    assert all(torch.equal(x, y) for x, y in zip(_params(model), _params(restored)))


def test_labelset_state_dict_round_trip():
    """LabelSet.state_dict/load_state_dict restores every row; features() flattens obs per query."""
    labels = _labels(10, 3, seed=25)
    labels.equal[3] = True
    copy_ = LabelSet(3, LENGTH, OBS_DIM, ACTION_DIM)
    copy_.load_state_dict(copy.deepcopy(labels.state_dict()))
    assert len(copy_) == 10
    for a, b in zip(labels.tensors(None, torch.device("cpu")), copy_.tensors(None, torch.device("cpu"))):
        assert torch.equal(a, b)
    assert copy_.features().shape == (10, 3 * LENGTH * OBS_DIM)
    np.testing.assert_array_equal(copy_.features()[4], labels.obs[4].ravel())
    assert LabelSet(2, LENGTH, OBS_DIM, ACTION_DIM).features().shape == (0, 2 * LENGTH * OBS_DIM)


# ------------------------------------------------------------------------------- LabelSet.add
@pytest.mark.parametrize("k,ranking", [(2, [[0, 0]]), (2, [[1, 2]]), (3, [[0, 1, 1]]), (3, [[0, 1, 3]]),
                                       (3, [[2, 1, 0], [0, 0, 1]]), (3, [[-1, 0, 1]])])
def test_labelset_rejects_a_ranking_that_is_not_a_permutation(k, ranking):
    """Every ranking must be a permutation of 0..K-1; a bad row rejects the whole add and changes nothing."""
    labels = LabelSet(k, LENGTH, OBS_DIM, ACTION_DIM)
    n = len(ranking)
    obs = np.zeros((n, k, LENGTH, OBS_DIM), np.float32)
    action = np.zeros((n, k, LENGTH, ACTION_DIM), np.float32)
    with pytest.raises(ValueError, match="permutation"):
        labels.add(obs, action, ranking, np.zeros(n, bool))
    assert len(labels) == 0 and len(labels.obs) == 0 and len(labels.equal) == 0


def test_labelset_add_appends_rows():
    """Valid adds append obs, action, ranking and equal in order."""
    labels = LabelSet(3, LENGTH, OBS_DIM, ACTION_DIM)
    obs, action, ranking = _queries(4, 3, seed=26)
    labels.add(obs[:3], action[:3], ranking[:3], [False, True, False])
    labels.add(obs[3:], action[3:], ranking[3:], [True])
    assert len(labels) == 4
    np.testing.assert_array_equal(labels.obs, obs)
    np.testing.assert_array_equal(labels.ranking, ranking)
    assert labels.equal.tolist() == [False, True, False, True]
