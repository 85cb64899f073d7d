"""Tests for pbrl/teachers/ (the B-Pref scripted teacher, the reward ledger, make_teacher).

Queries are built by hand: synthetic per-step rewards are recorded into a RewardLedger (at
shuffled slots, so the teacher must really read ``ledger.reward[index]``), and a QueryPool points
at those slots. Every statistical check uses a fixed seed and a tolerance of at least 4 standard
errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.errors import ConfigError
from pbrl.query.base import QueryPool
from pbrl.teachers import Answers, ScriptedTeacher, make_teacher
from pbrl.teachers.ledger import RewardLedger


# ------------------------------------------------------------------------------- helpers
def _write_queries(ledger: RewardLedger, rewards: np.ndarray, rng: np.random.Generator) -> QueryPool:
    """Record ``rewards`` ``[N, K, T]`` into the next ledger slots (in shuffled order) and return a pool over them.

    The values go in as an unfinished episode that is then dropped, so they never change the
    teacher's margin (only finished episodes count).
    """
    n, k, t = rewards.shape
    m = rewards.size
    assert ledger.capacity - ledger.size >= m, "helper needs free slots"
    perm = rng.permutation(m)  # query cell j lives at row start + perm[j]
    seq = np.empty(m)
    seq[perm] = rewards.ravel()
    start = ledger.size
    for i, r in enumerate(seq):
        ledger.record(np.array([start + i]), np.array([r]), np.array([False]))
    ledger.drop_partial_episodes()
    index = (start + perm.reshape(n, k, t)) % ledger.capacity
    assert np.array_equal(ledger.reward[index], rewards)
    return QueryPool(index, torch.zeros(n, k, t, 1), torch.zeros(n, k, t, 1))


def _record_episodes(ledger: RewardLedger, per_step: float, lengths: list[int]) -> None:
    """Finished episodes of constant per-step reward ``per_step``."""
    for length in lengths:
        for t in range(length):
            row = np.array([ledger.size % ledger.capacity])
            ledger.record(row, np.array([per_step]), np.array([t == length - 1]))


def _returns_with_gap(gaps: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Pairs ``[N, 2, length]`` of random per-step rewards whose summed returns differ by ``gaps`` (R0 - R1)."""
    r = rng.normal(size=(len(gaps), 2, length))
    r -= r.mean(-1, keepdims=True)  # each segment sums to 0 ...
    r[:, 0, 0] += gaps  # ... then segment 0 gets the gap
    return r


def _teacher(ledger: RewardLedger, seed: int = 0, **kw) -> ScriptedTeacher:
    return ScriptedTeacher(ledger, np.random.default_rng(seed), **kw)


# ------------------------------------------------------------------------------- oracle
@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_oracle_ranks_segments_by_return(k):
    """beta <= 0, no noise: the ranking is the full order by summed true reward, best first."""
    rng = np.random.default_rng(k)
    ledger = RewardLedger(10_000)
    rewards = rng.normal(size=(300, k, 4))
    answers = _teacher(ledger, beta=-1.0).answer(_write_queries(ledger, rewards, rng))
    assert np.array_equal(answers.ranking, np.argsort(-rewards.sum(-1), axis=1))
    assert not answers.equal.any() and not answers.skipped.any()
    assert answers.counts() == {"first": int((rewards.sum(-1).argmax(1) == 0).sum()),
                                "second": int((rewards.sum(-1).argmax(1) != 0).sum()), "equal": 0, "skip": 0}


def test_oracle_ties_go_to_the_earlier_segment():
    """Equal returns (and eps_equal = 0): a deterministic teacher ranks the earlier segment first."""
    rng = np.random.default_rng(0)
    ledger = RewardLedger(100)
    rewards = np.array([[[1.0, 2.0], [2.0, 1.0], [0.0, 0.0]]])  # returns 3, 3, 0
    answers = _teacher(ledger, beta=0.0).answer(_write_queries(ledger, rewards, rng))
    assert answers.ranking.tolist() == [[0, 1, 2]]
    assert not answers.equal.any()


# ------------------------------------------------------------------------------- mistake
def test_mistake_flips_about_eps_of_pair_labels():
    """eps = 0.1 on 10k pairs with clearly different returns: about 10% of labels are flipped."""
    rng = np.random.default_rng(1)
    ledger = RewardLedger(50_000)
    gaps = rng.choice([-5.0, 5.0], size=10_000)
    rewards = _returns_with_gap(gaps, 2, rng)
    answers = _teacher(ledger, seed=2, mistake=0.1).answer(_write_queries(ledger, rewards, rng))
    correct_first = np.where(gaps > 0, 0, 1)
    rate = float((answers.ranking[:, 0] != correct_first).mean())
    assert abs(rate - 0.1) < 0.015, rate


def test_mistake_reverses_whole_rankings_for_k3():
    """With K = 3 a mistake reverses the full ranking; every answer is the true order or its reverse."""
    rng = np.random.default_rng(3)
    ledger = RewardLedger(60_000)
    offsets = rng.permuted(np.tile([0.0, 4.0, 8.0], (5_000, 1)), axis=1)  # best segment at a random position
    rewards = rng.normal(size=(5_000, 3, 2)) + offsets[..., None]
    truth = np.argsort(-rewards.sum(-1), axis=1)
    answers = _teacher(ledger, seed=4, mistake=0.2).answer(_write_queries(ledger, rewards, rng))
    same = (answers.ranking == truth).all(1)
    reversed_ = (answers.ranking == truth[:, ::-1]).all(1)
    assert (same | reversed_).all()
    assert abs(reversed_.mean() - 0.2) < 0.025, reversed_.mean()


def test_no_mistake_no_flip():
    """eps = 0 never flips a label (the mistake draw is not always-on)."""
    rng = np.random.default_rng(5)
    ledger = RewardLedger(20_000)
    gaps = rng.choice([-3.0, 3.0], size=2_000)
    answers = _teacher(ledger, mistake=0.0).answer(_write_queries(ledger, _returns_with_gap(gaps, 3, rng), rng))
    assert np.array_equal(answers.ranking[:, 0], np.where(gaps > 0, 0, 1))


# ------------------------------------------------------------------------------- rationality
@pytest.mark.parametrize("beta,gap", [(1.0, 0.5), (1.0, 2.0), (1.0, -1.0), (2.0, 0.5)])
def test_stochastic_teacher_follows_bradley_terry(beta, gap):
    """beta > 0, K = 2: P(first preferred) = sigmoid(beta * (R0 - R1)) over 10k pairs."""
    rng = np.random.default_rng(6)
    ledger = RewardLedger(50_000)
    rewards = _returns_with_gap(np.full(10_000, gap), 2, rng)
    answers = _teacher(ledger, seed=7, beta=beta).answer(_write_queries(ledger, rewards, rng))
    p_first = float((answers.ranking[:, 0] == 0).mean())
    expected = 1.0 / (1.0 + math.exp(-beta * gap))
    assert abs(p_first - expected) < 0.02, (p_first, expected)


def test_stochastic_teacher_k3_follows_plackett_luce():
    """beta = 1, K = 3: P(segment i best) = softmax(beta R)_i; a full ranking has its Plackett-Luce probability."""
    rng = np.random.default_rng(8)
    ledger = RewardLedger(100_000)
    n, returns = 10_000, np.array([0.0, 0.5, 1.5])
    rewards = np.zeros((n, 3, 2))
    rewards[..., 0] = returns + 0.3
    rewards[..., 1] = -0.3  # sums are exactly `returns`
    answers = _teacher(ledger, seed=9, beta=1.0).answer(_write_queries(ledger, rewards, rng))
    e = np.exp(returns)
    best = np.bincount(answers.ranking[:, 0], minlength=3) / n
    np.testing.assert_allclose(best, e / e.sum(), atol=0.02)
    p_210 = e[2] / e.sum() * e[1] / (e[0] + e[1])  # ranking (2, 1, 0)
    assert abs(float((answers.ranking == [2, 1, 0]).all(1).mean()) - p_210) < 0.02
    assert (np.sort(answers.ranking, axis=1) == np.arange(3)).all()  # always a permutation


# ------------------------------------------------------------------------------- myopic
def test_myopic_prefers_the_late_reward():
    """gamma = 0.9: of two segments with equal plain sums, the one rewarded late wins (in either position)."""
    rng = np.random.default_rng(10)
    ledger = RewardLedger(1_000)
    t = 10
    early, late = np.zeros(t), np.zeros(t)
    early[1], late[8] = 1.0, 1.0
    rewards = np.stack([np.stack([early, late]), np.stack([late, early])])  # [2, 2, T]
    pool = _write_queries(ledger, rewards, rng)
    assert _teacher(ledger, gamma=0.9).answer(pool).ranking[:, 0].tolist() == [1, 0]
    assert _teacher(ledger, gamma=1.0).answer(pool).ranking[:, 0].tolist() == [0, 0]  # far-sighted: a tie


def test_myopic_weights_are_gamma_to_the_remaining_steps():
    """A reward 1 at step t weighs gamma^(T-1-t): it beats c at the last step iff c < gamma^(T-1-t)."""
    rng = np.random.default_rng(11)
    gamma, t_len = 0.9, 8
    ledger = RewardLedger(1_000)
    rewards = []
    for t in range(t_len):
        w = gamma ** (t_len - 1 - t)
        for c in (w * (1 - 1e-6), w * (1 + 1e-6)):
            a, b = np.zeros(t_len), np.zeros(t_len)
            a[t], b[-1] = 1.0, c
            rewards.append(np.stack([a, b]))
    answers = _teacher(ledger, gamma=gamma).answer(_write_queries(ledger, np.array(rewards), rng))
    assert answers.ranking[:, 0].tolist() == [0, 1] * t_len


# ------------------------------------------------------------------------------- skip / equal
def _threshold_queries(thres_skip: float, thres_equal: float) -> tuple[np.ndarray, list[bool], list[bool]]:
    """Pairs of 5 steps around both thresholds, with the expected (skipped, equal) flags."""
    d_s = 1e-6 * max(1.0, abs(thres_skip))
    d_e = 1e-6 * max(1.0, thres_equal)
    hi = abs(thres_skip) + 10 * thres_equal + 10.0  # comfortably above the skip threshold
    pairs = [  # (R0, R1, skipped, equal)
        (thres_skip - d_s, thres_skip - 50.0, True, False),  # best just below the skip threshold
        (thres_skip + d_s, thres_skip - 50.0, False, False),  # just above
        (hi, hi - thres_equal + d_e, False, True),  # difference just below the equal threshold
        (hi - thres_equal - d_e, hi, False, False),  # just above: ranked (second wins)
        (thres_skip - 1.0, thres_skip - 1.0, True, False),  # skipped and "equal": counts as skipped only
    ]
    rewards = np.zeros((len(pairs), 2, 5))
    for i, (r0, r1, _, _) in enumerate(pairs):
        rewards[i, 0, 2], rewards[i, 1, 2] = r0, r1  # one non-zero step: the sum is exact
    return rewards, [p[2] for p in pairs], [p[3] for p in pairs]


def test_thresholds_are_eps_times_the_current_margin_in_every_round():
    """Every round: thresholds = eps x (mean step reward of the last 10 episodes x T), never eps^2 x margin."""
    rng = np.random.default_rng(12)
    ledger = RewardLedger(100_000)
    teacher = _teacher(ledger, skip=0.3, equal=0.2)
    # round 0: no finished episode yet -> nothing skipped or equal, even for identical tiny returns
    pool = _write_queries(ledger, np.zeros((3, 2, 5)), rng)
    answers = teacher.answer(pool)
    assert teacher.thres_skip == -np.inf and teacher.thres_equal == 0.0
    assert not answers.skipped.any() and not answers.equal.any()

    episodes: list[tuple[float, int]] = []  # (per-step reward, length) of every finished episode
    rounds = [(2.0, [20] * 10), (4.0, [30, 10, 25, 40, 20, 20, 15, 30, 35, 20]), (1.0, [10, 50, 7, 13, 9]),
              (5.0, [40] * 8)]
    for per_step, lengths in rounds:
        _record_episodes(ledger, per_step, lengths)
        episodes += [(per_step, n) for n in lengths]
        last = episodes[-10:]
        margin = sum(r * n for r, n in last) / sum(n for _, n in last) * 5
        thres_skip, thres_equal = 0.3 * margin, 0.2 * abs(margin)
        rewards, skipped, equal = _threshold_queries(thres_skip, thres_equal)
        answers = teacher.answer(_write_queries(ledger, rewards, rng))
        assert teacher.thres_skip == pytest.approx(thres_skip, rel=1e-12)
        assert teacher.thres_equal == pytest.approx(thres_equal, rel=1e-12)
        assert answers.skipped.tolist() == skipped, (per_step, margin)
        assert answers.equal.tolist() == equal, (per_step, margin)
        assert answers.counts() == {"first": 1, "second": 1, "equal": 1, "skip": 2}
        if margin > 0:  # a best return between eps^2 x margin and eps x margin must be skipped
            between = np.zeros((1, 2, 5))
            between[0, 0, 0], between[0, 1, 0] = 0.5 * (0.3 ** 2 + 0.3) * margin, -100.0
            assert teacher.answer(_write_queries(ledger, between, rng)).skipped.tolist() == [True]


def test_a_negative_margin_turns_skipping_off_but_not_equal():
    """As in B-Pref, skip needs a positive threshold; equal uses |margin| (here -3 per step x 5 steps)."""
    rng = np.random.default_rng(16)
    ledger = RewardLedger(1_000)
    _record_episodes(ledger, -3.0, [25] * 12)
    teacher = _teacher(ledger, skip=0.3, equal=0.2)
    rewards = np.full((2, 2, 5), -10.0)
    rewards[1, 0, 0] += 10.0  # 10 apart: above the equal threshold 0.2 x 15 = 3
    answers = teacher.answer(_write_queries(ledger, rewards, rng))
    assert teacher.thres_skip == -np.inf and teacher.thres_equal == pytest.approx(3.0)
    assert answers.skipped.tolist() == [False, False] and answers.equal.tolist() == [True, False]


def test_skip_threshold_is_inclusive():
    """A best return exactly at eps_skip x margin is skipped (<=); margin 2.0 x 5 steps, eps 0.5: threshold 5."""
    rng = np.random.default_rng(15)
    ledger = RewardLedger(1_000)
    _record_episodes(ledger, 2.0, [10, 30])
    teacher = _teacher(ledger, skip=0.5)
    rewards = np.zeros((2, 2, 5))
    rewards[0, 0, 0], rewards[1, 1, 4] = 5.0, 5.0 + 1e-9
    answers = teacher.answer(_write_queries(ledger, rewards, rng))
    assert teacher.thres_skip == 5.0
    assert answers.skipped.tolist() == [True, False] and answers.ranking[1, 0] == 1


def test_thresholds_off_when_eps_is_zero():
    """eps_skip = eps_equal = 0: even poor, identical segments are ranked (none skipped, none equal)."""
    rng = np.random.default_rng(13)
    ledger = RewardLedger(1_000)
    _record_episodes(ledger, 2.0, [10] * 3)
    teacher = _teacher(ledger)
    answers = teacher.answer(_write_queries(ledger, np.full((4, 2, 5), -7.0), rng))
    assert not answers.skipped.any() and not answers.equal.any()
    assert answers.counts() == {"first": 4, "second": 0, "equal": 0, "skip": 0}


def test_answers_counts_by_outcome():
    """Answers.counts: best segment 0 -> first, any other -> second; equal and skip exclusive of them."""
    answers = Answers(ranking=np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0], [0, 1, 2]]),
                      equal=np.array([False, False, False, True, False, False]),
                      skipped=np.array([False, False, False, False, True, True]))
    assert answers.counts() == {"first": 1, "second": 2, "equal": 1, "skip": 2}


# ------------------------------------------------------------------------------- make_teacher
def test_make_teacher_builds_a_scripted_teacher_from_a_preset():
    """A full preset (with the ``preset`` key ignored) sets every field of the ScriptedTeacher."""
    cfg = {"name": "scripted", "preset": "mistake", "beta": 1.5, "gamma": 0.9, "mistake": 0.1, "skip": 0.2,
           "equal": 0.3}
    teacher = make_teacher(cfg, RewardLedger(10), np.random.default_rng(0))
    assert isinstance(teacher, ScriptedTeacher)
    assert (teacher.beta, teacher.gamma, teacher.eps_mistake, teacher.eps_skip, teacher.eps_equal) == \
        (1.5, 0.9, 0.1, 0.2, 0.3)


@pytest.mark.parametrize("update,field", [
    ({"temperature": 1.0}, "teacher.temperature"),
    ({"mistake": 1.5}, "teacher.mistake"),
    ({"mistake": -0.1}, "teacher.mistake"),
    ({"skip": 2}, "teacher.skip"),
    ({"equal": -1}, "teacher.equal"),
    ({"gamma": 0}, "teacher.gamma"),
    ({"gamma": 1.01}, "teacher.gamma"),
    ({"beta": "1"}, "teacher.beta"),
    ({"mistake": True}, "teacher.mistake"),
    ({"name": "none"}, "teacher.name"),
    ({"name": "human"}, "teacher.name"),
])
def test_make_teacher_rejects_bad_fields(update, field):
    """Each invalid teacher setting raises ConfigError naming that field."""
    cfg = {"name": "scripted", "beta": -1.0, "gamma": 1.0, "mistake": 0.0, "skip": 0.0, "equal": 0.0, **update}
    with pytest.raises(ConfigError) as info:
        make_teacher(cfg, RewardLedger(10), np.random.default_rng(0))
    assert info.value.field == field


def test_teacher_state_dict_restores_the_rng():
    """A teacher restored from state_dict gives the same stochastic answers as the original."""
    rng = np.random.default_rng(14)
    ledger = RewardLedger(10_000)
    pool = _write_queries(ledger, _returns_with_gap(np.zeros(500), 2, rng), rng)
    a = _teacher(ledger, seed=1, beta=1.0, mistake=0.3)
    a.answer(pool)
    b = _teacher(ledger, seed=99, beta=1.0, mistake=0.3)
    b.load_state_dict(a.state_dict())
    ra, rb = a.answer(pool).ranking, b.answer(pool).ranking
    assert np.array_equal(ra, rb)
    assert 0 < (ra[:, 0] == 0).mean() < 1  # really random, so the equality above means something


# ------------------------------------------------------------------------------- ledger
def test_ledger_records_by_row_and_keeps_each_envs_episodes_apart():
    """record(rows, rewards, ended) of 2 envs: rewards at the given rows, returns per env's own episode."""
    ledger = RewardLedger(6, n_envs=2)
    assert ledger.mean_step_reward() is None
    ledger.record(np.array([0, 1]), np.array([1.0, 10.0]), np.array([False, False]))
    ledger.record(np.array([2, 3]), np.array([2.0, 20.0]), np.array([True, False]))  # env 0 ends: 1 + 2
    ledger.record(np.array([4, 5]), np.array([4.0, 40.0]), np.array([False, True]))  # env 1 ends: 10 + 20 + 40
    ledger.record(np.array([0, 1]), np.array([8.0, 80.0]), np.array([True, False]))  # the ring wraps; env 0: 4 + 8
    assert ledger.reward.tolist() == [8.0, 80.0, 2.0, 20.0, 4.0, 40.0]
    assert ledger.episode_returns == [3.0, 70.0, 12.0] and ledger.episode_lengths == [2, 3, 2]
    assert ledger.last_return.tolist() == [12.0, 70.0]
    assert ledger.mean_step_reward(1) == 6.0 and ledger.mean_step_reward(10) == pytest.approx(85 / 7)


@pytest.mark.parametrize("reorder", [False, True])
def test_ledger_state_dict_round_trip(reorder):
    """state_dict/load_state_dict: rows as saved, or laid out in the order the episode store restored its own."""
    ledger = RewardLedger(4)
    for k in range(6):  # wraps: rows hold 4, 5, 2, 3
        ledger.record(np.array([k % 4]), np.array([float(k)]), np.array([k == 2]))
    ledger.record(np.array([2]), np.array([100.0]), np.array([False]))  # a running episode, not in the returns
    state = ledger.state_dict()
    ledger.record(np.array([3]), np.array([-1.0]), np.array([False]))  # later writes do not reach the saved state
    restored = RewardLedger(8)
    restored.record(np.array([0]), np.array([50.0]), np.array([False]))  # a running episode: dropped by the load
    order = np.array([2, 3, 0, 1]) if reorder else None  # oldest first, as EpisodeStore.load_state_dict returns
    restored.load_state_dict(state, order)
    assert restored.reward[:4].tolist() == ([100.0, 3.0, 4.0, 5.0] if reorder else [4.0, 5.0, 100.0, 3.0])
    assert restored.size == 4 and restored.episode_returns == [3.0] and restored.episode_lengths == [3]
    restored.record(np.array([4]), np.array([1.0]), np.array([True]))  # the running episode was dropped
    assert restored.episode_returns[-1] == 1.0 and restored.episode_lengths[-1] == 1


def test_the_teachers_package_knows_nothing_of_the_viewer():
    """No import cycle: pbrl.teachers never imports pbrl.human; the human teacher registers itself, and its
    module loads the label store only (the web stack comes with the session the run starts)."""
    import subprocess
    import sys

    code = ("import sys, pbrl.teachers as t; assert not [m for m in sys.modules if m.startswith('pbrl.human')]; "
            "assert 'human' not in t.TEACHERS; import pbrl.human.teacher; assert 'human' in t.TEACHERS; "
            "assert 'starlette' not in sys.modules and 'pbrl.human.server' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_teacher_registers_by_name():
    from pbrl.teachers import TEACHERS, register

    @register("test_constant")
    def make_constant(cfg, ledger, rng, run):
        return ScriptedTeacher(ledger, rng)

    try:
        assert isinstance(make_teacher({"name": "test_constant"}, RewardLedger(10), np.random.default_rng(0)),
                          ScriptedTeacher)
        with pytest.raises(ValueError, match="twice"):
            register("test_constant")(make_constant)
    finally:
        del TEACHERS["test_constant"]
