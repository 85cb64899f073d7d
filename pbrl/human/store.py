"""The label store: one SQLite database (WAL mode) per run, shared by the trainer, the clip renderer and the viewer.

Three writers meet here, each in its own process or thread, each with its own connection:

- the trainer inserts **queries** (K segments with their simulator states) and waits for labels;
- the clip renderer turns each new query's segments into clip files and marks the query ready;
- the viewer serves ready queries to a person and writes **labels**.

A label is committed (``synchronous=FULL``) before the viewer acknowledges it, so an answer the
person saw accepted survives a crash of any process. Nothing is ever deleted: an undo sets the
label's ``undone`` flag and the query goes back to the front of the queue.

Answers are stored raw (``left``/``right``/``equal``/``cant_tell``, or a ranking) together with the
order the clips were shown in; ``training_target`` is the one place that maps them to what the
reward model trains on (see its docstring).
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

SCHEMA_VERSION = 1
ANSWERS = ("left", "right", "equal", "cant_tell", "ranking")
STORE_NAME = "labels.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                -- JSON
);
CREATE TABLE IF NOT EXISTS annotators (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    id           INTEGER PRIMARY KEY,
    k            INTEGER NOT NULL,     -- segments in the query (2 = a pair)
    round        INTEGER,              -- the trainer's feedback round
    env_step     INTEGER,              -- the trainer's env step when it asked
    selection    TEXT,                 -- the rule that picked it (uniform, disagreement, ...)
    score        REAL,                 -- that rule's score, where it has one
    segments     BLOB NOT NULL,        -- npz: obs [K,T,o], action [K,T,a], sim_state [K,T,d], index [K,T]
    status       TEXT NOT NULL DEFAULT 'rendering' CHECK (status IN ('rendering', 'ready', 'failed')),
    clips        TEXT,                 -- JSON list of K clip file names in the run's clip folder
    clip_fps     REAL,
    clip_frames  INTEGER,
    render_error TEXT,
    created      REAL NOT NULL,
    rendered     REAL,
    requeued     REAL,                 -- set by an undo: the query goes back to the front
    served_to    INTEGER REFERENCES annotators(id),
    served_at    REAL
);
CREATE TABLE IF NOT EXISTS labels (
    id           INTEGER PRIMARY KEY,
    query_id     INTEGER NOT NULL REFERENCES queries(id),
    annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    answer       TEXT NOT NULL CHECK (answer IN ('left', 'right', 'equal', 'cant_tell', 'ranking')),
    ranking      TEXT,                 -- JSON: segment indices best first (answer = ranking)
    shown_order  TEXT NOT NULL,        -- JSON: the segment shown at each position, left first
    response_ms  INTEGER,
    replays      INTEGER,
    is_repeat    INTEGER NOT NULL DEFAULT 0,  -- 1: a repeat with sides swapped; measures consistency, not trained on
    created      REAL NOT NULL,
    undone       INTEGER NOT NULL DEFAULT 0,
    consumed     REAL                  -- when the trainer took it (it can no longer be undone)
);
CREATE INDEX IF NOT EXISTS labels_by_query ON labels (query_id, undone);
CREATE INDEX IF NOT EXISTS queries_by_status ON queries (status);
"""


class StoreError(ValueError):
    """A request the store refuses; ``field`` names the offending input, ``status`` an HTTP status for it."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


@dataclass
class Target:
    """What the reward model trains on for one label: segment ``ranking`` best first, or ``equal``."""

    ranking: list[int]
    equal: bool


def training_target(answer: str, shown_order: list[int], ranking: list[int] | None = None) -> Target | None:
    """Map a raw answer to a training target; None means "not trained on".

    - ``left`` / ``right``: the segment shown on that side is better. For a pair whose first
      stored segment is σ0 this is the Bradley-Terry target P(σ0 ≻ σ1) = 1 or 0, whichever side σ0
      was shown on.
    - ``equal``: target 0.5 (all K segments equally good).
    - ``cant_tell``: dropped, as in Christiano et al. (2017); the query still counts as asked.
    - ``ranking``: ``ranking`` lists the segments (stored indices, not screen positions) best first;
      the Plackett-Luce loss trains on it.
    """
    k = len(shown_order)
    if answer == "cant_tell":
        return None
    if answer == "equal":
        return Target(list(range(k)), True)
    if answer in ("left", "right"):
        best = shown_order[0] if answer == "left" else shown_order[1]
        return Target([best] + [s for s in range(k) if s != best], False)
    if answer == "ranking":
        return Target(list(ranking), False)
    raise StoreError("answer", f"got {answer!r}; allowed: {', '.join(ANSWERS)}")


def pack_segments(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack_segments(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as npz:
        return {k: npz[k] for k in npz.files}


class LabelStore:
    """One connection to a run's label database. Open one per thread or process (sqlite3 rule)."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the viewer acknowledges
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise StoreError("schema_version", f"{self.path} has schema {version}; this pbrl reads {SCHEMA_VERSION}")

    @classmethod
    def for_run(cls, run_dir: str | Path) -> "LabelStore":
        return cls(Path(run_dir) / "human" / STORE_NAME)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: one writer at a time, all or nothing."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ----- meta: run settings and the trainer's live status -------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.db.execute("SELECT key, value FROM meta")}

    # ----- annotators ------------------------------------------------------------------------------

    def annotator_id(self, name: str) -> int:
        """The id of annotator ``name``, created on first use."""
        if not isinstance(name, str) or not name.strip() or len(name) > 64 or not name.isprintable():
            raise StoreError("annotator", f"got {name!r}; must be a printable name of 1-64 characters")
        name = name.strip()
        self.db.execute("INSERT OR IGNORE INTO annotators (name, created) VALUES (?, ?)", (name, time.time()))
        return int(self.db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()["id"])

    # ----- queries (written by the trainer and the renderer) ---------------------------------------

    def add_queries(self, obs: np.ndarray, action: np.ndarray, sim_state: np.ndarray, index: np.ndarray,
                    round_: int | None = None, env_step: int | None = None, selection: str | None = None,
                    scores: np.ndarray | None = None) -> list[int]:
        """Insert N queries (arrays ``[N, K, T, ·]``) in one transaction; returns their ids."""
        n, k = obs.shape[:2]
        now = time.time()
        ids = []
        with self.transaction() as db:
            for i in range(n):
                blob = pack_segments(obs=obs[i], action=action[i], sim_state=sim_state[i], index=index[i])
                score = None if scores is None or not math.isfinite(float(scores[i])) else float(scores[i])
                cur = db.execute("INSERT INTO queries (k, round, env_step, selection, score, segments, created) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (k, round_, env_step, selection, score, blob, now))
                ids.append(int(cur.lastrowid))
        return ids

    def segments(self, query_id: int) -> dict[str, np.ndarray]:
        row = self.db.execute("SELECT segments FROM queries WHERE id = ?", (query_id,)).fetchone()
        if row is None:
            raise StoreError("query_id", f"no query {query_id}", 404)
        return unpack_segments(row["segments"])

    def to_render(self, limit: int = 8) -> list[int]:
        """Ids of queries still waiting for their clips, oldest first."""
        return [r["id"] for r in self.db.execute(
            "SELECT id FROM queries WHERE status = 'rendering' ORDER BY id LIMIT ?", (limit,))]

    def mark_rendered(self, query_id: int, clips: list[str], fps: float, frames: int) -> None:
        """The query's clips are fully written: it may now be shown."""
        self.db.execute("UPDATE queries SET status = 'ready', clips = ?, clip_fps = ?, clip_frames = ?, rendered = ? "
                        "WHERE id = ?", (json.dumps(clips), fps, frames, time.time(), query_id))

    def mark_failed(self, query_id: int, error: str) -> None:
        self.db.execute("UPDATE queries SET status = 'failed', render_error = ? WHERE id = ?", (error[:2000], query_id))

    def query(self, query_id: int) -> sqlite3.Row:
        row = self.db.execute("SELECT id, k, status, clips, clip_fps, clip_frames, round, selection, score, created "
                              "FROM queries WHERE id = ?", (query_id,)).fetchone()
        if row is None:
            raise StoreError("query_id", f"no query {query_id}", 404)
        return row

    # ----- serving and labelling (the viewer) ------------------------------------------------------

    _UNLABELLED = ("NOT EXISTS (SELECT 1 FROM labels l WHERE l.query_id = q.id AND l.undone = 0 AND l.is_repeat = 0)")

    def next_query(self, annotator: str, repeat_fraction: float = 0.0, rng: np.random.Generator | None = None,
                   lease_s: float = 120.0, exclude: set[int] | frozenset[int] = frozenset(), repeat_gap: int = 0
                   ) -> tuple[sqlite3.Row, bool] | None:
        """The query to show ``annotator`` next and whether it is a repeat; None when none is ready.

        Order: a query this annotator undid comes back first; then, if a repeat is due, a labelled
        query shown again (the viewer swaps its sides); else the oldest ready unlabelled query not
        currently shown to another annotator. Whether the *next* pair is a repeat is decided once per
        served pair, with probability ``repeat_fraction``, so a page that polls while nothing is ready
        draws no extra repeats; a due repeat waits until one is eligible. Eligible: labelled by
        someone, not yet repeated by this annotator, and, when this annotator gave the original, at
        least ``repeat_gap`` of their labels later (a pair seen moments ago is remembered, which
        inflates self-consistency). No repeats once every query of the budget is labelled.
        ``exclude``: ids the viewer already holds (the pair it shows and the ones it preloads).
        """
        me = self.annotator_id(annotator)
        now = time.time()
        skip = "".join(f" AND q.id != {int(i)}" for i in sorted(exclude)[:16])
        undone = self.db.execute(
            "SELECT q.id FROM queries q WHERE q.status = 'ready' AND q.requeued IS NOT NULL AND q.served_to = ? AND "
            + self._UNLABELLED + skip + " ORDER BY q.requeued DESC LIMIT 1", (me,)).fetchone()
        if undone is not None:  # the pair just taken back, before anything else (no repeat draw)
            return self.query(int(undone["id"])), False
        due = self._repeat_due(me)
        if due and repeat_fraction > 0 and not self.budget_met():
            candidates = self._repeat_candidates(me, repeat_gap, skip)
            if candidates:
                pick = candidates[int(rng.integers(len(candidates)))] if rng is not None else candidates[0]
                self._set_repeat_due(me, rng is not None and rng.random() < repeat_fraction)
                return self.query(pick), True
        with self.transaction() as db:
            row = db.execute(
                "SELECT q.id FROM queries q WHERE q.status = 'ready' AND " + self._UNLABELLED +
                " AND (q.served_to IS NULL OR q.served_to = ? OR q.served_at < ?)" + skip +
                " ORDER BY (q.requeued IS NULL), q.requeued DESC, q.id LIMIT 1", (me, now - lease_s)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE queries SET served_to = ?, served_at = ? WHERE id = ?", (me, now, row["id"]))
        if not due and repeat_fraction > 0 and rng is not None:  # a due repeat stays due until one is eligible
            self._set_repeat_due(me, bool(rng.random() < repeat_fraction))
        return self.query(int(row["id"])), False

    def _repeat_due(self, annotator_id: int) -> bool:
        return bool(self.get_meta("repeat_due", {}).get(str(annotator_id), False))

    def _set_repeat_due(self, annotator_id: int, due: bool) -> None:
        self.set_meta("repeat_due", self.get_meta("repeat_due", {}) | {str(annotator_id): due})

    def _repeat_candidates(self, me: int, gap: int, skip: str) -> list[int]:
        """Ready queries ``me`` may see again (see ``next_query``), oldest first."""
        rows = self.db.execute(
            "SELECT q.id FROM queries q JOIN labels o ON o.query_id = q.id AND o.undone = 0 AND o.is_repeat = 0 "
            "WHERE q.status = 'ready' "
            "AND NOT EXISTS (SELECT 1 FROM labels r WHERE r.query_id = q.id AND r.is_repeat = 1 AND r.undone = 0 "
            "AND r.annotator_id = ?) "
            "AND (o.annotator_id != ? OR (SELECT COUNT(*) FROM labels n WHERE n.annotator_id = ? AND n.undone = 0 "
            "AND n.id > o.id) >= ?)" + skip + " ORDER BY q.id", (me, me, me, int(gap))).fetchall()
        return [int(r["id"]) for r in rows]

    def budget_met(self, counts: dict[str, int] | None = None) -> bool:
        """Every query of the run's label budget (meta ``budget``) has been asked and answered (``counts``: reuse)."""
        budget = self.get_meta("budget")
        if not budget:
            return False
        counts = counts or self.counts()
        return counts["queries"] >= budget and counts["ready"] + counts["rendering"] == 0

    def add_label(self, query_id: int, annotator: str, answer: str, shown_order: list[int],
                  ranking: list[int] | None = None, response_ms: int | None = None, replays: int | None = None,
                  is_repeat: bool = False, require_ready: bool = True) -> int:
        """Validate and commit one label; returns its id. Raises StoreError (nothing written) on bad input.

        ``require_ready=False`` accepts a label for a query whose clips are not rendered (imports).
        """
        if answer not in ANSWERS:
            raise StoreError("answer", f"got {answer!r}; allowed: {', '.join(ANSWERS)}")
        q = self.query(query_id)
        k = int(q["k"])
        if require_ready and q["status"] != "ready":
            raise StoreError("query_id", f"query {query_id} is not ready to label (status {q['status']})", 409)
        if sorted(shown_order) != list(range(k)):
            raise StoreError("shown_order", f"got {shown_order!r}; must list each of the {k} segments once")
        if answer in ("left", "right") and k != 2:
            raise StoreError("answer", f"{answer!r} needs a pair; query {query_id} has {k} segments: send a ranking")
        if answer == "ranking":
            if ranking is None or sorted(ranking) != list(range(k)):
                raise StoreError("ranking", f"got {ranking!r}; must list each of the {k} segments once, best first")
        elif ranking is not None:
            raise StoreError("ranking", f"only allowed with answer 'ranking', not {answer!r}")
        for name, value in (("response_ms", response_ms), ("replays", replays)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31):
                raise StoreError(name, f"got {value!r}; must be a non-negative integer")
        me = self.annotator_id(annotator)
        with self.transaction() as db:
            labelled = db.execute("SELECT annotator_id FROM labels WHERE query_id = ? AND undone = 0 AND is_repeat = 0",
                                  (query_id,)).fetchone()
            if is_repeat:
                if labelled is None:
                    raise StoreError("query_id", f"query {query_id} has no label to repeat", 409)
                if db.execute("SELECT 1 FROM labels WHERE query_id = ? AND undone = 0 AND is_repeat = 1 AND "
                              "annotator_id = ?", (query_id, me)).fetchone():
                    raise StoreError("query_id", f"query {query_id} was already repeated by {annotator!r}", 409)
            elif labelled is not None:
                raise StoreError("query_id", f"query {query_id} is already labelled", 409)
            cur = db.execute(
                "INSERT INTO labels (query_id, annotator_id, answer, ranking, shown_order, response_ms, replays, "
                "is_repeat, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (query_id, me, answer, None if ranking is None else json.dumps(list(ranking)),
                 json.dumps(list(shown_order)), response_ms, replays, int(is_repeat), time.time()))
            db.execute("UPDATE queries SET requeued = NULL, served_to = NULL WHERE id = ?", (query_id,))
        return int(cur.lastrowid)

    def undo_last(self, annotator: str) -> int | None:
        """Undo ``annotator``'s latest label (if its query has not been trained on); returns the query id."""
        me = self.annotator_id(annotator)
        with self.transaction() as db:
            row = db.execute("SELECT id, query_id, consumed FROM labels WHERE annotator_id = ? AND undone = 0 "
                             "ORDER BY id DESC LIMIT 1", (me,)).fetchone()
            if row is None:
                return None
            if row["consumed"] is not None:
                raise StoreError("undo", "the trainer has already trained on this label; it can no longer be undone", 409)
            db.execute("UPDATE labels SET undone = 1 WHERE id = ?", (row["id"],))
            now = time.time()  # a fresh lease: the undone query waits for this annotator, not for whoever asks next
            db.execute("UPDATE queries SET requeued = ?, served_to = ?, served_at = ? WHERE id = ?",
                       (now, me, now, row["query_id"]))
        return int(row["query_id"])

    def undone_label(self, annotator: str) -> dict[str, Any] | None:
        """``annotator``'s most recently undone label: ``query_id``, ``shown_order``, ``is_repeat`` (the viewer shows it again)."""
        row = self.db.execute("SELECT l.query_id, l.shown_order, l.is_repeat FROM labels l JOIN annotators a "
                              "ON a.id = l.annotator_id WHERE a.name = ? AND l.undone = 1 ORDER BY l.id DESC LIMIT 1",
                              (annotator.strip(),)).fetchone()
        if row is None:
            return None
        return {"query_id": int(row["query_id"]), "shown_order": json.loads(row["shown_order"]),
                "is_repeat": bool(row["is_repeat"])}

    # ----- reading labels back (the trainer, stats, export) ---------------------------------------

    def labels(self, include_undone: bool = False) -> list[dict[str, Any]]:
        """Every label with its annotator's name, oldest first."""
        rows = self.db.execute(
            "SELECT l.*, a.name AS annotator FROM labels l JOIN annotators a ON a.id = l.annotator_id "
            + ("" if include_undone else "WHERE l.undone = 0 ") + "ORDER BY l.id").fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["shown_order"] = json.loads(d["shown_order"])
            d["ranking"] = None if d["ranking"] is None else json.loads(d["ranking"])
            out.append(d)
        return out

    def training_labels(self, query_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """The label each query trains on (its first standing, non-repeat label), by query id."""
        out: dict[int, dict[str, Any]] = {}
        for lab in self.labels():
            if lab["is_repeat"] or lab["query_id"] in out:
                continue
            if query_ids is None or lab["query_id"] in query_ids:
                out[lab["query_id"]] = lab
        return out

    def mark_consumed(self, label_ids: list[int]) -> set[int]:
        """The trainer takes these labels: from now on they cannot be undone.

        Returns the ids actually taken: a label undone since the trainer read it is left out, in the
        same transaction, so the trainer never trains on an answer the person took back.
        """
        now = time.time()
        with self.transaction() as db:
            db.executemany("UPDATE labels SET consumed = ? WHERE id = ? AND undone = 0", [(now, i) for i in label_ids])
            taken = {int(r[0]) for r in db.execute(
                f"SELECT id FROM labels WHERE consumed = ? AND id IN ({','.join('?' * len(label_ids))})",
                (now, *label_ids))} if label_ids else set()
        return taken

    def counts(self) -> dict[str, int]:
        """Queries by state and labels by kind, for the live progress bar."""
        one = lambda sql, *a: int(self.db.execute(sql, a).fetchone()[0])  # noqa: E731
        return {
            "queries": one("SELECT COUNT(*) FROM queries"),
            "rendering": one("SELECT COUNT(*) FROM queries WHERE status = 'rendering'"),
            "failed": one("SELECT COUNT(*) FROM queries WHERE status = 'failed'"),
            "ready": one("SELECT COUNT(*) FROM queries q WHERE status = 'ready' AND " + self._UNLABELLED),
            "labelled": one("SELECT COUNT(DISTINCT query_id) FROM labels WHERE undone = 0 AND is_repeat = 0"),
            "labels": one("SELECT COUNT(*) FROM labels WHERE undone = 0"),
            "repeats": one("SELECT COUNT(*) FROM labels WHERE undone = 0 AND is_repeat = 1"),
        }

    def label_rate(self, window_s: float = 300.0, now: float | None = None) -> dict[str, float | None]:
        """Labels and repeats per minute over the last ``window_s`` seconds of real labelling time.

        The clock starts when the first label in the window was shown (its time minus its response
        time), not ``window_s`` ago, so a person who started two minutes ago is not divided by five.
        None until a label exists in the window.
        """
        now = time.time() if now is None else now
        rows = self.db.execute("SELECT created, response_ms, is_repeat FROM labels WHERE undone = 0 AND created > ? "
                               "ORDER BY created", (now - window_s,)).fetchall()
        if not rows:
            return {"labels_per_minute": None, "repeats_per_minute": None}
        first = rows[0]
        started = max(now - window_s, first["created"] - (first["response_ms"] or 0) / 1000.0)
        minutes = max(now - started, 5.0) / 60.0  # at least 5 s: one quick answer is not a rate
        repeats = sum(r["is_repeat"] for r in rows)
        return {"labels_per_minute": (len(rows) - repeats) / minutes, "repeats_per_minute": repeats / minutes}

    def history(self, limit: int = 8) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT l.id, l.query_id, l.answer, l.ranking, l.shown_order, l.is_repeat, l.undone, l.created, "
            "a.name AS annotator FROM labels l JOIN annotators a ON a.id = l.annotator_id ORDER BY l.id DESC LIMIT ?",
            (limit,)).fetchall()
        return [dict(r) for r in rows]
