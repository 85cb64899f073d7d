"""Tests for ``pbrl/human/store.py`` and ``pbrl/human/stats.py``: the answer → target mapping, validation,
undo, repeats, leases, and the consistency statistics. No clips are written: queries are marked ready by hand."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from human_fixtures import fake_store
from pbrl.human.stats import agreement_stats, cohens_kappa
from pbrl.human.store import LabelStore, StoreError, Target, training_target


def ready_store(tmp_path, n: int = 4, k: int = 2) -> LabelStore:
    """``n`` queries of ``k`` segments, all ready to label (clip names only, no files)."""
    store = fake_store(tmp_path, n=n, k=k, render=False)
    for qid in range(1, n + 1):
        store.mark_rendered(qid, [f"q{qid:06d}_{s}.mp4" for s in range(k)], 30.0, 6)
    return store


def label_rows(store: LabelStore) -> list[tuple]:
    """The labels table as it is on disk, read over a second connection."""
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT * FROM labels ORDER BY id").fetchall()


# ----- training_target ---------------------------------------------------------------------------

@pytest.mark.parametrize("answer, shown_order, winner", [
    ("left", [0, 1], 0), ("right", [0, 1], 1),
    ("left", [1, 0], 1), ("right", [1, 0], 0),  # segment 1 shown on the left: "left" means segment 1 wins
])
def test_training_target_maps_a_side_to_the_segment_shown_there(answer, shown_order, winner):
    assert training_target(answer, shown_order) == Target([winner, 1 - winner], False)


def test_training_target_equal_cant_tell_and_ranking():
    assert training_target("equal", [1, 0]) == Target([0, 1], True)
    assert training_target("equal", [2, 0, 1]).equal
    assert training_target("cant_tell", [0, 1]) is None
    # a ranking lists stored segment indices already: it passes through whatever the screen order
    assert training_target("ranking", [2, 0, 1], [1, 2, 0]) == Target([1, 2, 0], False)
    with pytest.raises(StoreError) as err:
        training_target("maybe", [0, 1])
    assert err.value.field == "answer"


def test_stored_label_trains_on_the_segment_the_person_picked(tmp_path):
    store = ready_store(tmp_path, n=1)
    store.add_label(1, "ann", "left", [1, 0])
    lab = store.training_labels()[1]
    assert training_target(lab["answer"], lab["shown_order"], lab["ranking"]).ranking == [1, 0]


# ----- add_label validation ----------------------------------------------------------------------

GOOD = dict(query_id=1, annotator="ann", answer="left", shown_order=[0, 1])


@pytest.mark.parametrize("change, field, status", [
    (dict(answer="maybe"), "answer", 400),
    (dict(answer=None), "answer", 400),
    (dict(answer="LEFT"), "answer", 400),
    (dict(shown_order=[0, 0]), "shown_order", 400),
    (dict(shown_order=[0]), "shown_order", 400),
    (dict(shown_order=[0, 1, 2]), "shown_order", 400),
    (dict(shown_order=[1, 2]), "shown_order", 400),
    (dict(answer="ranking"), "ranking", 400),                   # ranking missing
    (dict(answer="ranking", ranking=[0, 0]), "ranking", 400),
    (dict(ranking=[0, 1]), "ranking", 400),                     # a ranking with a pair answer
    (dict(query_id=99), "query_id", 404),
    (dict(query_id=5), "query_id", 409),                        # still rendering
    (dict(response_ms=-1), "response_ms", 400),
    (dict(response_ms=1.5), "response_ms", 400),
    (dict(response_ms=True), "response_ms", 400),
    (dict(replays=2**31), "replays", 400),
    (dict(annotator=""), "annotator", 400),
    (dict(annotator="x" * 65), "annotator", 400),
    (dict(annotator="a\x00b"), "annotator", 400),
    (dict(is_repeat=True), "query_id", 409),                    # nothing to repeat yet
])
def test_add_label_refusal_names_the_field_and_writes_nothing(tmp_path, change, field, status):
    store = ready_store(tmp_path, n=4)
    z = np.zeros((1, 2, 3, 1))
    store.add_queries(z, z, z, z[..., 0].astype(int))  # query 5: not rendered yet
    before = label_rows(store)
    with pytest.raises(StoreError) as err:
        store.add_label(**(GOOD | change))
    assert (err.value.field, err.value.status) == (field, status)
    assert label_rows(store) == before == []


def test_left_and_right_need_a_pair(tmp_path):
    store = ready_store(tmp_path, n=1, k=3)
    with pytest.raises(StoreError) as err:
        store.add_label(1, "ann", "left", [0, 1, 2])
    assert err.value.field == "answer"
    store.add_label(1, "ann", "ranking", [2, 0, 1], ranking=[1, 2, 0])
    assert store.training_labels()[1]["ranking"] == [1, 2, 0]


# ----- one label per query, undo -----------------------------------------------------------------

def test_a_second_label_for_a_labelled_query_is_a_conflict(tmp_path):
    store = ready_store(tmp_path)
    store.add_label(1, "ann", "left", [0, 1])
    for who in ("ann", "ben"):
        with pytest.raises(StoreError) as err:
            store.add_label(1, who, "right", [1, 0])
        assert (err.value.field, err.value.status) == ("query_id", 409)
    assert len(label_rows(store)) == 1


def test_undo_keeps_the_row_and_puts_the_query_first(tmp_path):
    store = ready_store(tmp_path)
    for qid in (1, 2, 3):
        q, _ = store.next_query("ann")
        assert q["id"] == qid
        store.add_label(qid, "ann", "left", [0, 1])
    assert store.undo_last("ann") == 3
    assert store.undo_last("ann") == 2
    rows = store.labels(include_undone=True)
    assert [(r["query_id"], r["undone"]) for r in rows] == [(1, 0), (2, 1), (3, 1)]
    assert list(store.training_labels()) == [1]
    q, repeat = store.next_query("ann")
    assert (q["id"], repeat) == (2, False)  # the latest undo comes back first, before 3 and 4
    store.add_label(2, "ann", "right", [0, 1])
    assert store.next_query("ann")[0]["id"] == 3
    assert store.counts()["labelled"] == 2


def test_undo_after_the_trainer_took_the_label_is_a_conflict(tmp_path):
    store = ready_store(tmp_path)
    label_id = store.add_label(1, "ann", "left", [0, 1])
    store.mark_consumed([label_id])
    with pytest.raises(StoreError) as err:
        store.undo_last("ann")
    assert err.value.status == 409
    assert [r["undone"] for r in store.labels(include_undone=True)] == [0]
    assert store.undo_last("ben") is None  # nothing to undo


def test_a_label_undone_while_the_trainer_reads_is_not_taken(tmp_path):
    store = ready_store(tmp_path)
    first = store.add_label(1, "ann", "left", [0, 1])
    second = store.add_label(2, "ann", "right", [0, 1])
    read = [lab["id"] for lab in store.training_labels().values()]  # the trainer reads both ...
    store.undo_last("ann")  # ... the person takes the second back ...
    assert store.mark_consumed(read) == {first}  # ... and only the first is taken
    assert store.mark_consumed([]) == set()
    assert [r["consumed"] is not None for r in store.labels(include_undone=True)] == [True, False]
    assert second in read


def test_an_undone_query_goes_back_to_its_annotator_only(tmp_path):
    store = ready_store(tmp_path)
    assert store.next_query("ann")[0]["id"] == 1
    store.db.execute("UPDATE queries SET served_at = served_at - 1000 WHERE id = 1")  # a slow answer
    store.add_label(1, "ann", "left", [0, 1])
    store.undo_last("ann")
    assert store.next_query("ben")[0]["id"] == 2  # within the lease the undone query waits for ann
    assert store.next_query("ann")[0]["id"] == 1


# ----- repeats -----------------------------------------------------------------------------------

def test_repeats_come_back_flagged_and_are_not_trained_on(tmp_path):
    store = ready_store(tmp_path)
    rng = np.random.default_rng(0)
    assert store.next_query("ann", repeat_fraction=1.0, rng=rng)[1] is False  # nothing labelled yet
    first = store.add_label(1, "ann", "left", [0, 1])
    q, repeat = store.next_query("ann", repeat_fraction=1.0, rng=rng)
    assert (q["id"], repeat) == (1, True)
    store.add_label(1, "ann", "left", [1, 0], is_repeat=True)  # answered by screen side
    assert (store.counts()["labelled"], store.counts()["repeats"]) == (1, 1)
    assert {qid: lab["id"] for qid, lab in store.training_labels().items()} == {1: first}
    # ann has repeated query 1 already: no repeat left, the next unlabelled query comes instead
    assert store.next_query("ann", repeat_fraction=1.0, rng=rng)[0]["id"] == 2
    with pytest.raises(StoreError) as err:
        store.add_label(1, "ann", "right", [1, 0], is_repeat=True)
    assert err.value.status == 409


def test_training_labels_take_the_first_standing_non_repeat_label(tmp_path):
    store = ready_store(tmp_path)
    store.add_label(1, "ann", "left", [0, 1])
    store.undo_last("ann")
    standing = store.add_label(1, "ben", "right", [0, 1])
    store.add_label(1, "ann", "left", [1, 0], is_repeat=True)
    store.add_label(2, "ann", "cant_tell", [1, 0])
    got = store.training_labels()
    assert got[1]["id"] == standing and got[1]["answer"] == "right"
    assert got[2]["answer"] == "cant_tell"
    assert set(store.training_labels([2])) == {2}


# ----- leases ------------------------------------------------------------------------------------

def test_a_served_query_is_leased_to_its_annotator(tmp_path):
    store = ready_store(tmp_path)
    assert store.next_query("ann")[0]["id"] == 1
    assert store.next_query("ann")[0]["id"] == 1  # the same annotator gets it again (a page reload)
    assert store.next_query("ben")[0]["id"] == 2
    assert store.next_query("ben", lease_s=0)[0]["id"] == 1  # ann's lease ran out
    assert store.next_query("ann", exclude={1, 2})[0]["id"] == 3


# ----- stats -------------------------------------------------------------------------------------

@pytest.mark.parametrize("repeat_answer, consistency", [("right", 1.0), ("left", 0.0)])
def test_self_consistency_compares_segments_not_screen_sides(tmp_path, repeat_answer, consistency):
    store = ready_store(tmp_path)
    store.add_label(1, "ann", "left", [0, 1])  # segment 0 wins
    # sides swapped: "right" still picks segment 0; "left" follows the screen and picks segment 1
    store.add_label(1, "ann", repeat_answer, [1, 0], is_repeat=True)
    ann = agreement_stats(store.labels())["annotators"]["ann"]
    assert (ann["labels"], ann["repeats"], ann["self_pairs"]) == (2, 1, 1)
    assert ann["self_consistency"] == consistency


def test_cohens_kappa_between_two_annotators_matches_a_hand_computation(tmp_path):
    store = ready_store(tmp_path)
    # ann labels four queries; ben repeats each with the sides swapped. In segment terms (ann, ben):
    #   q1 (s0, s0)  q2 (s0, s1)  q3 (s1, s1)  q4 (equal, s0)
    # observed agreement p_o = 2/4 = 0.5
    # ann: s0 2, s1 1, equal 1; ben: s0 2, s1 2
    # chance p_e = (2*2 + 1*2 + 1*0) / 4**2 = 6/16 = 0.375
    # kappa = (p_o - p_e) / (1 - p_e) = 0.125 / 0.625 = 0.2
    for qid, (mine, theirs) in enumerate([("left", "right"), ("left", "left"), ("right", "left"),
                                          ("equal", "right")], start=1):
        store.add_label(qid, "ann", mine, [0, 1])
        store.add_label(qid, "ben", theirs, [1, 0], is_repeat=True)
    stats = agreement_stats(store.labels())
    assert stats["agreement"] == [{"annotators": ["ann", "ben"], "pairs": 4, "agreement": 0.5,
                                   "kappa": pytest.approx(0.2)}]
    assert stats["annotators"]["ben"]["self_consistency"] is None
    assert cohens_kappa([("s0", "s0"), ("s0", "s1"), ("s1", "s1"), ("equal", "s0")]) == pytest.approx(0.2)
    assert cohens_kappa([]) is None
    assert cohens_kappa([("s0", "s0")]) is None  # chance agreement 1: kappa undefined
