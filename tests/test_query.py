"""Tests for pbrl/query/ (candidate pools, the rule registry and every selection rule).

The episode store holds ``obs = (episode, step, noise)``, so a query's windows can be checked
against the store's own episode/step columns and its observations. The store wraps around its end,
so windows may wrap the ring too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.buffers.episodes import EpisodeStore
from pbrl.query import RULES, QueryPool, SelectionContext, register, select
from pbrl.query.kcenter import greedy_kcenter
from pbrl.reward.model import RewardModel, RewardModelConfig

OBS_DIM, ACTION_DIM, LENGTH = 3, 1, 10
EPISODE_LENGTHS = [60, 70, 65, 80, 62, 75]  # 412 steps into 300 slots: episode 0 and most of 1 overwritten
CAPACITY, LAST = 300, 3


def _buffer() -> EpisodeStore:
    rng = np.random.default_rng(0)
    buf = EpisodeStore(CAPACITY, OBS_DIM, ACTION_DIM)
    for ep, n in enumerate(EPISODE_LENGTHS):
        for t in range(n):
            obs = np.array([[ep, t, rng.normal()]], np.float32)
            buf.add(obs, rng.uniform(-1, 1, (1, ACTION_DIM)).astype(np.float32), None, np.array([ep]), np.array([t]))
    return buf


def draw_pool(store: EpisodeStore, count: int, k: int, length: int, rng: np.random.Generator, last: int) -> QueryPool:
    return store.draw(count, k, length, rng, last)


BUF = _buffer()  # read-only in every test


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def _model(seed: int = 0) -> RewardModel:
    torch.manual_seed(seed)
    return RewardModel(OBS_DIM, ACTION_DIM, RewardModelConfig(ensemble_size=3, hidden_dim=16, depth=2))


def _ctx(k: int, labelled: bool, seed: int = 0) -> SelectionContext:
    """A context with an untrained model and either no labelled queries or a few."""
    rng = np.random.default_rng(seed)
    if labelled:
        features = draw_pool(BUF, 5, k, LENGTH, np.random.default_rng(100 + seed), LAST).features().numpy()
    else:
        features = np.zeros((0, k * LENGTH * OBS_DIM), np.float32)
    return SelectionContext(_model(seed), features, rng)


def _assert_valid_windows(pool: QueryPool, count: int, k: int) -> None:
    """Every segment is ``LENGTH`` consecutive steps of one of the last ``LAST`` episodes, copied from the buffer."""
    assert pool.index.shape == (count, k, LENGTH)
    assert pool.obs.shape == (count, k, LENGTH, OBS_DIM) and pool.action.shape == (count, k, LENGTH, ACTION_DIM)
    assert ((pool.index >= 0) & (pool.index < BUF.size)).all()
    episode, step = BUF.episode[pool.index], BUF.step[pool.index]
    assert (episode == episode[..., :1]).all()  # one episode per segment
    assert (np.diff(step, axis=-1) == 1).all()  # consecutive steps
    recent = sorted(set(BUF.episode[:BUF.size].tolist()))[-LAST:]
    assert recent == [3, 4, 5] and np.isin(episode, recent).all()
    np.testing.assert_array_equal(pool.obs.numpy(), BUF.obs[pool.index])
    np.testing.assert_array_equal(pool.action.numpy(), BUF.action[pool.index])
    np.testing.assert_array_equal(pool.obs[..., 0].numpy(), episode)  # obs really is (episode, step, ·)
    np.testing.assert_array_equal(pool.obs[..., 1].numpy(), step)


def test_the_standard_rules_are_registered():
    """The registry holds PEBBLE's rules; only uniform asks for exactly `count` candidates."""
    assert {"uniform", "disagreement", "entropy", "kcenter", "kcenter_disagreement", "kcenter_entropy"} <= set(RULES)
    assert not RULES["uniform"].uses_pool
    assert all(spec.uses_pool for name, spec in RULES.items() if name != "uniform")


@pytest.mark.parametrize("labelled", [False, True], ids=["no_labels", "labels"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name", sorted(RULES))
def test_select_returns_count_valid_queries(name, k, labelled):
    """select(rule) returns exactly `count` queries made of valid buffer windows of the last episodes."""
    pool = select(name, BUF, 4, _ctx(k, labelled), k=k, length=LENGTH, large_batch=5, last_episodes=LAST)
    _assert_valid_windows(pool, 4, k)


@pytest.mark.parametrize("labelled", [False, True], ids=["no_labels", "labels"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_picks_distinct_in_range_indices(name, k, labelled):
    """Each rule called on a drawn pool returns `count` distinct integer positions of that pool."""
    ctx = _ctx(k, labelled, seed=1)
    pool = draw_pool(BUF, 30, k, LENGTH, np.random.default_rng(2), LAST)
    _assert_valid_windows(pool, 30, k)
    chosen = np.asarray(RULES[name].fn(pool, 6, ctx))
    assert chosen.shape == (6,) and np.issubdtype(chosen.dtype, np.integer)
    assert len(np.unique(chosen)) == 6 and chosen.min() >= 0 and chosen.max() < 30


def test_select_takes_the_rules_choice_from_a_pool_of_count_times_large_batch(monkeypatch):
    """select draws count x large_batch candidates for a pool rule and returns exactly the rows it chose."""
    seen = {}

    def pick_last(pool, count, ctx):
        seen["pool"] = pool
        return np.arange(len(pool) - 1, len(pool) - count - 1, -1)  # [11, 10, 9]

    monkeypatch.setitem(RULES, "disagreement", RULES["disagreement"].__class__(pick_last, True))
    out = select("disagreement", BUF, 3, _ctx(2, False), k=2, length=LENGTH, large_batch=4, last_episodes=LAST)
    pool = seen["pool"]
    assert len(pool) == 12
    np.testing.assert_array_equal(out.index, pool.index[[11, 10, 9]])
    assert torch.equal(out.obs, pool.obs[[11, 10, 9]]) and torch.equal(out.action, pool.action[[11, 10, 9]])


def test_select_accepts_a_reversed_numpy_view_from_a_rule(monkeypatch):
    """A rule may return its indices as any integer array, e.g. the common top-k idiom argsort(...)[::-1][:count]."""
    def top_by_argsort(pool, count, ctx):
        scores = pool.obs[:, 0, 0, 2].numpy()  # the noise column of the first step
        return np.argsort(scores)[::-1][:count]

    monkeypatch.setitem(RULES, "disagreement", RULES["disagreement"].__class__(top_by_argsort, True))
    out = select("disagreement", BUF, 3, _ctx(2, False), k=2, length=LENGTH, large_batch=4, last_episodes=LAST)
    assert len(out) == 3


def test_select_rejects_a_rule_returning_duplicates(monkeypatch):
    """A rule that returns a repeated index is caught by select."""
    monkeypatch.setitem(RULES, "uniform", RULES["uniform"].__class__(lambda pool, count, ctx: np.zeros(count), False))
    with pytest.raises(RuntimeError, match="invalid indices"):
        select("uniform", BUF, 3, _ctx(2, False), k=2, length=LENGTH, large_batch=4, last_episodes=LAST)


@pytest.mark.parametrize("k", [2, 3])
def test_disagreement_picks_the_highest_std_of_member_probabilities(k):
    """disagreement = the `count` candidates with the largest std across members of choice_probs (mean over K)."""
    ctx = _ctx(k, False, seed=3)
    pool = draw_pool(BUF, 40, k, LENGTH, np.random.default_rng(4), LAST)
    probs = ctx.model.choice_probs(pool.obs, pool.action).numpy()  # [E, P, K]
    assert probs.shape == (3, 40, k)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    std = probs.std(axis=0).mean(-1) if k > 2 else probs[:, :, 0].std(axis=0)  # K=2: std of P(first)
    expected = np.argsort(-std)[:5]
    chosen = RULES["disagreement"].fn(pool, 5, ctx)
    assert set(chosen.tolist()) == set(expected.tolist())
    assert std[chosen].min() > np.delete(std, chosen).max()


def test_entropy_picks_the_highest_mean_member_entropy():
    """entropy = the `count` candidates with the largest member-averaged entropy of choice_probs."""
    ctx = _ctx(2, False, seed=5)
    pool = draw_pool(BUF, 40, 2, LENGTH, np.random.default_rng(6), LAST)
    probs = ctx.model.choice_probs(pool.obs, pool.action).numpy().astype(np.float64)
    ent = -(probs * np.log(probs)).sum(-1).mean(0)
    chosen = RULES["entropy"].fn(pool, 5, ctx)
    assert set(chosen.tolist()) == set(np.argsort(-ent)[:5].tolist())


def _point_pool(points) -> QueryPool:
    """A pool whose features are the given 2-d points (K = 2 segments of one step with one obs each)."""
    pts = torch.tensor(points, dtype=torch.float32)
    n = len(pts)
    return QueryPool(np.zeros((n, 2, 1), np.int64), pts.reshape(n, 2, 1, 1), torch.zeros(n, 2, 1, 1))


def test_kcenter_picks_the_farthest_point_from_the_labelled_set_first():
    """Greedy k-center: each pick is the candidate farthest from the labelled points and earlier picks."""
    pool = _point_pool([(0, 0), (1, 0), (0, 1), (5, 5), (10, 0), (0, -7)])
    ctx = SelectionContext(model=None, labelled_features=np.array([[0.0, 0.0]]), rng=np.random.default_rng(0))
    # distances to (0,0): 0, 1, 1, 7.07, 10, 7 -> (10,0); then (5,5) at 7.07 beats (0,-7) at 7; then (0,-7)
    assert RULES["kcenter"].fn(pool, 3, ctx).tolist() == [4, 3, 5]
    # a labelled point next to (10, 0): now (0,-7) at 7 is the farthest, then (5,5) at 6.4 from (9,0)
    ctx.labelled_features = np.array([[0.0, 0.0], [9.0, 0.0]])
    assert RULES["kcenter"].fn(pool, 2, ctx).tolist() == [5, 3]


def _farthest_first(points: np.ndarray, first: int, count: int) -> list[int]:
    """Reference greedy k-center from a given first pick (ties: lowest index)."""
    chosen = [first]
    while len(chosen) < count:
        d = np.min(np.abs(points[:, None] - points[chosen][None]), axis=1)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    return chosen


@pytest.mark.parametrize("seed", range(4))
def test_kcenter_without_labels_covers_from_a_random_first_pick(seed):
    """No labels yet: the first pick is random, every later one the farthest from the picks so far."""
    points = np.array([0.0, 1.0, 2.0, 50.0, 100.0])
    chosen = greedy_kcenter(torch.tensor(points)[:, None], np.zeros((0, 1)), 3, np.random.default_rng(seed))
    assert chosen.tolist() == _farthest_first(points, int(chosen[0]), 3)


def test_kcenter_hybrid_stays_in_the_uncertain_half():
    """kcenter_disagreement picks only among the more uncertain half, the farthest of them from the labels first."""
    ctx = _ctx(2, True, seed=7)
    pool = draw_pool(BUF, 40, 2, LENGTH, np.random.default_rng(8), LAST)
    probs = ctx.model.choice_probs(pool.obs, pool.action).numpy()
    std = probs[:, :, 0].std(axis=0)
    half = np.argsort(-std)[:20]
    chosen = RULES["kcenter_disagreement"].fn(pool, 5, ctx)
    assert set(chosen.tolist()) <= set(half.tolist()) and len(set(chosen.tolist())) == 5
    feats = pool.features().numpy().astype(np.float64)
    lab = ctx.labelled_features.astype(np.float64)
    dist = np.linalg.norm(feats[half][:, None] - lab[None], axis=-1).min(1)
    assert chosen[0] == half[np.argmax(dist)]


def test_uniform_is_a_permutation_of_its_pool():
    """uniform (pool of exactly `count`) returns every candidate once, in random order, reproducibly per seed."""
    pool = draw_pool(BUF, 8, 2, LENGTH, np.random.default_rng(9), LAST)
    a = RULES["uniform"].fn(pool, 8, SelectionContext(None, np.zeros((0, 1)), np.random.default_rng(1)))
    b = RULES["uniform"].fn(pool, 8, SelectionContext(None, np.zeros((0, 1)), np.random.default_rng(1)))
    assert sorted(a.tolist()) == list(range(8)) and a.tolist() == b.tolist()


def test_registering_a_duplicate_rule_name_raises():
    """@register with a taken name raises and leaves the original rule in place."""
    original = RULES["uniform"]
    with pytest.raises(ValueError, match="uniform"):
        register("uniform")(lambda pool, count, ctx: np.arange(count))
    assert RULES["uniform"] is original


def test_draw_pool_without_a_long_enough_episode_raises():
    """No window of `length` consecutive steps: draw_pool raises ValueError (the caller turns it into a ConfigError)."""
    with pytest.raises(ValueError):
        draw_pool(BUF, 4, 2, 100, np.random.default_rng(0), LAST)
