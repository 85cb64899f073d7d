"""Tests for ``pbrl/human/server.py`` over HTTP (Starlette's TestClient): the token, origin and host
checks, a label round trip, and a fuzz of the label, undo, next and clip routes with malformed and
hostile requests. Every refused request must get a 4xx JSON error and leave the labels table as it was."""

from __future__ import annotations

import json
import random
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

from human_fixtures import fake_store
from pbrl.human.server import MAX_BODY, ViewerConfig, make_app

with warnings.catch_warnings():  # starlette asks for httpx2 in place of httpx; both work
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "test-token"
BASE = "http://127.0.0.1:8000"
AUTH = {"X-PBRL-Token": TOKEN}


class Viewer:
    """A test client over a fresh three-query store, and a second connection to check what is on disk."""

    def __init__(self, run_dir: Path):
        fake_store(run_dir, n=3, frames=6).close()
        self.store_path = run_dir / "human" / "labels.sqlite"
        self.clip_dir = run_dir / "human" / "clips"
        self.app = make_app(ViewerConfig(self.store_path, self.clip_dir, token=TOKEN))
        # a 500 must come back as a response the test can assert on, not as the server's exception
        self.client = TestClient(self.app, base_url=BASE, raise_server_exceptions=False)

    def labels(self) -> list[tuple]:
        with sqlite3.connect(self.store_path) as db:
            return db.execute("SELECT * FROM labels ORDER BY id").fetchall()

    def get(self, url: str, **kw):
        return self.client.get(url, headers=AUTH | kw.pop("headers", {}), **kw)

    def post(self, url: str, body=None, **kw):
        """``body``: raw bytes, a str or a generator (streamed) as is; anything else is sent as JSON."""
        raw = body is None or isinstance(body, (bytes, str)) or hasattr(body, "__next__")
        content = body if raw else json.dumps(body)
        return self.client.post(url, content=content, headers=AUTH | kw.pop("headers", {}), **kw)


@pytest.fixture
def viewer(tmp_path) -> Viewer:
    return Viewer(tmp_path)


def assert_json_error(resp, status: int | None = None) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    if status is not None:
        assert resp.status_code == status, resp.text[:300]
    assert "error" in resp.json(), resp.text[:300]


# ----- token, origin, host -----------------------------------------------------------------------

def test_api_and_clips_need_the_token(viewer):
    c = viewer.client
    for headers, params in [({}, {}), ({"X-PBRL-Token": "wrong"}, {}), ({}, {"token": "wrong"}),
                            ({"X-PBRL-Token": ""}, {}), ({"X-PBRL-Token": TOKEN[:-1]}, {})]:
        for url in ("/api/state", "/api/next?annotator=ann", "/api/stats", "/"):
            resp = c.get(url, headers=headers, params=params)
            assert_json_error(resp, 403)
            assert resp.json()["field"] == "token"
        assert_json_error(c.post("/api/label", headers=headers, params=params, json={}), 403)
    assert_json_error(c.get("/clips/q000001_0.mp4"), 403)
    resp = c.get(f"/clips/q000001_0.mp4?token={TOKEN}")
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
    assert resp.content == (viewer.clip_dir / "q000001_0.mp4").read_bytes()
    assert c.get("/api/state", params={"token": TOKEN}).status_code == 200
    assert TOKEN in c.get("/", params={"token": TOKEN}).text  # the page carries it to its API calls


def test_foreign_origin_and_host_are_refused(viewer):
    body = {"query_id": 1, "annotator": "ann", "answer": "left", "order": [0, 1]}
    for origin in ("http://evil.example", "http://127.0.0.1:8001", "https://127.0.0.1:8000", "null"):
        resp = viewer.post("/api/label", body, headers={"Origin": origin})
        assert_json_error(resp, 403)
        assert resp.json()["field"] == "origin"
    assert_json_error(viewer.post("/api/undo", {"annotator": "ann"}, headers={"Origin": "http://evil.example"}), 403)
    for host in ("evil.example:8000", "evil.example", "127.0.0.1.evil.example:8000"):
        resp = viewer.get("/api/state", headers={"Host": host})
        assert_json_error(resp, 403)
        assert resp.json()["field"] == "host"
        assert_json_error(viewer.post("/api/label", body, headers={"Host": host}), 403)
    assert viewer.labels() == []
    assert viewer.post("/api/label", body, headers={"Origin": BASE}).status_code == 200  # same origin
    assert viewer.get("/api/state", headers={"Host": "localhost:8000"}).status_code == 200


# ----- a label round trip ------------------------------------------------------------------------

def test_label_round_trip_state_undo_and_stats(viewer):
    q = viewer.get("/api/next", params={"annotator": "ann"}).json()["query"]
    assert (q["id"], q["k"], q["repeat"]) == (1, 2, False) and sorted(q["order"]) == [0, 1]
    assert viewer.client.get(q["clips"][0]).status_code == 200  # the clip URLs work as given
    answer = "left"
    resp = viewer.post("/api/label", {"query_id": q["id"], "annotator": "ann", "answer": answer,
                                      "order": q["order"], "response_ms": 1234, "replays": 1})
    assert resp.status_code == 200, resp.text
    label_id = resp.json()["label_id"]
    with sqlite3.connect(viewer.store_path) as db:
        row = db.execute("SELECT query_id, answer, shown_order, response_ms, replays, undone FROM labels "
                         "WHERE id = ?", (label_id,)).fetchone()
    assert row == (1, answer, json.dumps(q["order"]), 1234, 1, 0)
    counts = viewer.get("/api/state", params={"annotator": "ann"}).json()["counts"]
    assert (counts["labelled"], counts["ready"], counts["labels"]) == (1, 2, 1)
    assert viewer.get("/api/next", params={"annotator": "ann"}).json()["query"]["id"] == 2

    resp = viewer.post("/api/undo", {"annotator": "ann"})
    assert resp.status_code == 200 and resp.json()["query_id"] == 1
    assert resp.json()["counts"]["labelled"] == 0
    with sqlite3.connect(viewer.store_path) as db:
        assert db.execute("SELECT undone FROM labels WHERE id = ?", (label_id,)).fetchone() == (1,)  # kept
    assert viewer.get("/api/next", params={"annotator": "ann"}).json()["query"]["id"] == 1
    assert_json_error(viewer.post("/api/undo", {"annotator": "ben"}), 409)

    assert viewer.post("/api/label", {"query_id": 1, "annotator": "ann", "answer": "right",
                                      "order": [1, 0]}).status_code == 200
    assert_json_error(viewer.post("/api/label", {"query_id": 1, "annotator": "ben", "answer": "left",
                                                 "order": [0, 1]}), 409)
    stats = viewer.get("/api/stats").json()
    assert stats["annotators"]["ann"]["labels"] == 1 and stats["agreement"] == []
    history = viewer.get("/api/state").json()["history"]
    assert [(h["query_id"], h["answer"], h["undone"]) for h in history] == [(1, "right", False), (1, "left", True)]


# ----- fuzz --------------------------------------------------------------------------------------

VALID = {"query_id": 2, "annotator": "bob", "answer": "left", "order": [1, 0]}
# values each field must refuse, whatever the other fields hold
BAD = {
    "query_id": ["2", 2.0, True, False, -2, 0, 10**30, 2**62, None, [2], {"id": 2}, "2; DROP TABLE labels",
                 "1 OR 1=1", 99999, float("nan"), float("inf")],
    "annotator": ["", "   ", "x" * 65, "y" * 10_000, 7, None, ["bob"], {"name": "bob"}, True, "b\x00b",
                  "\ud800", "bob\n", "\t"],
    "answer": [1, 0, None, ["left"], {"left": 1}, "LEFT", "left ", "", "\x00", "left\x00", "ranking",
               "' OR '1'='1", "left'; DROP TABLE labels; --", "\ud83d", "𝓁eft"],
    "order": [[0], [0, 1, 2], [0, 0], [1, 1], ["0", "1"], [[0], [1]], [True, False], [0.0, 1.0], None, "01",
              {}, [-1, 0], [0, 2**70], [], [0, None], "[0, 1]"],
    "ranking": [[0, 1], [1, 0], [], "x", 0, [[1, 0]]],  # any ranking with a pair answer
    "response_ms": [-1, 2**31, 10**30, 1.5, "100", True, [], {}, float("nan"), -0.0],
    "replays": [-1, 2**31, 0.5, "3", False, [1]],
    "repeat": ["true", 1, 0, None, [], "false", {}],
}
UNKNOWN = [{"extra": 1}, {"Query_id": 2}, {"__proto__": {}}, {"\ud800": 1}, {"": 0}, {"q\x00": 1},
           {"query_id ": 2}, {"x" * 5000: 1}]


def hostile_bodies() -> list:
    """The fixed list: (name, body) where body is bytes, a str, a generator or a JSON-able object."""
    deep = 5000
    out = [
        ("empty", b""), ("not json", b"answer=left"), ("half json", json.dumps(VALID)[:-1]),
        ("array", [VALID]), ("string", "\"left\""), ("number", b"2"), ("null", b"null"), ("true", b"true"),
        ("nan", b"NaN"), ("empty object", {}), ("bad utf-8", b"{\"answer\": \"\xff\xfe\"}"),
        ("nul", json.dumps(VALID).encode()[:10] + b"\x00" + json.dumps(VALID).encode()[10:]),
        ("deep array", b"[" * deep + b"]" * deep), ("deep object", b'{"a":' * deep + b"1" + b"}" * deep),
        ("deep in a field", json.dumps(VALID | {"order": [0, 1]})[:-1].encode() + b', "ranking": '
         + b"[" * deep + b"]" * deep + b"}"),
        ("huge number", b'{"query_id": 1' + b"0" * 5000 + b', "annotator": "bob", "answer": "left", "order": [1, 0]}'),
        ("huge exponent", b'{"query_id": 1e999999, "annotator": "bob", "answer": "left", "order": [1, 0]}'),
        ("huge body", json.dumps(VALID | {"annotator": "b" * (MAX_BODY + 10)})),
        ("huge valid-looking body", json.dumps(VALID)[:-1] + " " * MAX_BODY + "}"),
        ("streamed huge body", (b" " * 4096 for _ in range(8))),
        ("streamed huge body of a valid label", iter([json.dumps(VALID)[:-1].encode()] + [b" " * 4096] * 5 + [b"}"])),
        ("duplicate keys", b'{"query_id": 2, "annotator": "bob", "answer": "maybe", "order": [1, 0], "answer": "x"}'),
    ]
    for field, values in BAD.items():
        out += [(f"{field}={v!r:.30}", VALID | {field: v}) for v in values]
    for field in ("query_id", "annotator", "answer", "order"):
        out.append((f"no {field}", {k: v for k, v in VALID.items() if k != field}))
    out += [(f"unknown {u!r:.30}", VALID | u) for u in UNKNOWN]
    # a ranking answer with bad rankings, and a pair answer with a ranking under K-way rules
    out += [(f"ranking {r!r:.30}", VALID | {"answer": "ranking", "ranking": r})
            for r in ([0], [0, 0], [0, 1, 2], None, ["0", "1"], [True, False], "01")]
    out.append(("repeat of an unlabelled query", VALID | {"repeat": True}))
    return out


def undo_bodies() -> list:
    return [("empty", b""), ("array", ["bob"]), ("string", "\"bob\""), ("null", b"null"), ("no annotator", {}),
            ("deep", b"[" * 5000 + b"]" * 5000), ("huge", json.dumps({"annotator": "a" * (MAX_BODY + 1)})),
            ("streamed", (b" " * 4096 for _ in range(8))), ("ann plus unknown", {"annotator": "ann", "x": 1})] + \
        [(f"annotator={v!r:.30}", {"annotator": v}) for v in BAD["annotator"]] + \
        [("sql", {"annotator": "ann' OR '1'='1"}), ("nobody", {"annotator": "nobody"})]


def assert_refused_and_nothing_written(viewer: Viewer, resp, before: list, what: str) -> None:
    assert 400 <= resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"
    assert "error" in resp.json(), f"{what}: {resp.text[:300]}"
    assert viewer.labels() == before, f"{what} changed the labels table"


def standing_label(viewer: Viewer) -> list:
    """ann's label on query 1: what a hostile undo would have to change."""
    resp = viewer.post("/api/label", {"query_id": 1, "annotator": "ann", "answer": "left", "order": [0, 1]})
    assert resp.status_code == 200
    return viewer.labels()


def test_fuzz_label_and_undo_refuse_hostile_bodies(viewer):
    before = standing_label(viewer)
    for name, body in hostile_bodies():
        assert_refused_and_nothing_written(viewer, viewer.post("/api/label", body), before, f"label {name}")
    for name, body in undo_bodies():
        assert_refused_and_nothing_written(viewer, viewer.post("/api/undo", body), before, f"undo {name}")
    # the wrong method, content type, or a lying Content-Length
    payload = json.dumps(VALID)
    for resp in (viewer.get("/api/label"), viewer.client.put("/api/label", headers=AUTH, content=payload),
                 viewer.get("/api/undo"), viewer.client.delete("/api/label", headers=AUTH),
                 viewer.post("/api/label", payload, headers={"Content-Length": str(10 * MAX_BODY)}),
                 viewer.post("/api/label", "{}", headers={"Content-Length": "-1"}),
                 viewer.post("/api/label", "{}", headers={"Content-Length": "abc"})):
        assert_refused_and_nothing_written(viewer, resp, before, f"{resp.request.method} {resp.request.headers}")
    # the token checks come first: a hostile body without a token is refused for the token
    resp = viewer.client.post("/api/label", content=b"[" * 5000)
    assert resp.status_code == 403 and viewer.labels() == before


def mutate(rng: random.Random) -> bytes:
    """A valid label body with one to three fields made invalid, sometimes also corrupted as bytes."""
    body = dict(VALID)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.7:
            field = rng.choice(sorted(BAD))
            body[field] = rng.choice(BAD[field])
        elif op < 0.85:
            body.pop(rng.choice(["query_id", "annotator", "answer", "order"]), None)
        else:
            body |= rng.choice(UNKNOWN)
    if "ranking" in body and body.get("answer") == "ranking" and body["ranking"] in ([0, 1], [1, 0]):
        body["order"] = [0, 0]  # a valid ranking answer; keep the body invalid elsewhere
    data = json.dumps(body).encode()
    r = rng.random()
    if r < 0.1:
        data = data[:rng.randrange(len(data))]
    elif r < 0.2:
        i = rng.randrange(len(data) + 1)
        data = data[:i] + rng.choice([b"\x00", b"\xff", b"\xc3", b"\x01", b"\x7f\xfe"]) + data[i:]
    elif r < 0.25:
        data = b"[" + data + b"]"
    return data


def test_fuzz_seeded_mutations_of_a_valid_label(viewer):
    before = standing_label(viewer)
    rng = random.Random(0)
    for i in range(300):
        data = mutate(rng)
        resp = viewer.post("/api/label", data)
        assert_refused_and_nothing_written(viewer, resp, before, f"mutation {i}: {data[:200]!r}")
    # then the valid body itself is accepted: the mutations were refused for their mutations
    assert viewer.post("/api/label", VALID).status_code == 200
    assert len(viewer.labels()) == 2


CLIP_NAMES = [
    "../labels.sqlite", "..%2Flabels.sqlite", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/labels.sqlite",
    "%2e%2e%2flabels.sqlite",
    "%2e%2e", "..", ".", "/etc/passwd", "%2Fetc%2Fpasswd", "%2F%2Fetc%2Fpasswd", "q000001_0.mp4/../../x",
    "q000001_0.mp4%2F..%2F..%2Flabels.sqlite", "q000001_0.mp4%00", "q000001_0%00.mp4", "%00", "a" * 96 + ".mp4",
    "a" * 5000 + ".mp4", "q000001_0.mp4.part", "q000001_0.part.mp4", "labels.sqlite", "labels.sqlite-wal",
    "..%5Clabels.sqlite", "q000001_0.MP4", "q000001_0.mp4%20", "q000001_0.mp4%0A", "%20q000001_0.mp4",
    "q000001_0.mp4;", "~root",
    "q999999_0.mp4", "clips", "%252e%252e%252flabels.sqlite", "q000001_0.mp4?x=../../labels.sqlite&",
]


def test_fuzz_clip_names_serve_only_clip_files(viewer, tmp_path):
    (viewer.clip_dir / "q000001_0.mp4.part").write_bytes(b"partial")
    (viewer.clip_dir / "secret.txt").write_text("no")
    (viewer.clip_dir / "link.mp4").symlink_to(viewer.store_path)  # a clip name pointing out of the folder
    sqlite_magic = b"SQLite format 3"
    for name in CLIP_NAMES + ["link.mp4", "secret.txt"]:
        resp = viewer.get(f"/clips/{name}")
        assert sqlite_magic not in resp.content and b"partial" not in resp.content, name
        if resp.status_code == 200:  # the client normalised ".." away, or sent "?..." as the query string
            path = resp.request.url.path
            clip = (viewer.clip_dir / "q000001_0.mp4").read_bytes()
            assert not path.startswith("/clips/") or resp.content == clip, name
            continue
        assert_json_error(resp)
    for path in ("/labels.sqlite", "/human/labels.sqlite", "/static/../labels.sqlite", "/static/%2e%2e/server.py",
                 "/static/..%2fserver.py", "/static/%2e%2e%2f%2e%2e%2fhuman%2fstore.py"):
        resp = viewer.get(path)
        assert resp.status_code in (404, 400, 403) and sqlite_magic not in resp.content, path
        assert b"StoreError" not in resp.content, path


EXCLUDE = ["abc", "1,,2", ",", "-1", "1.5", "1e3", "\u00b2", "\u0661", "0x10", " 1 ", "1;DROP TABLE labels",
           ",".join(map(str, range(20))), "9" * 19, "9" * 18, "9" * 1000, "1," * 5000, "%00", "\x00", "1\x002",
           "[1,2]", "' OR 1=1 --", "\ufeff1", "１"]


def test_fuzz_next_query_exclude_and_annotator(viewer):
    before = standing_label(viewer)
    for exclude in EXCLUDE:
        resp = viewer.get("/api/next", params={"annotator": "bob", "exclude": exclude})
        assert resp.status_code < 500, (exclude, resp.status_code, resp.text[:200])
        if resp.status_code >= 400:
            assert_json_error(resp)
        else:
            assert resp.json()["query"]["id"] in (2, 3), exclude
    for annotator in ["", " ", "x" * 65, "\x00", "a\nb", None]:
        params = {} if annotator is None else {"annotator": annotator}
        resp = viewer.get("/api/next", params=params)
        assert 400 <= resp.status_code < 500 and "error" in resp.json(), (annotator, resp.text[:200])
        assert resp.json()["field"] == "annotator"
    assert viewer.labels() == before


def test_server_keeps_serving_after_the_fuzz(viewer):
    before = standing_label(viewer)
    for name, body in hostile_bodies()[:30]:
        viewer.post("/api/label", body)
    for exclude in EXCLUDE:
        viewer.get("/api/next", params={"annotator": "bob", "exclude": exclude})
    assert viewer.labels() == before
    q = viewer.get("/api/next", params={"annotator": "bob"}).json()["query"]  # bob holds the leases now
    assert q is not None
    resp = viewer.post("/api/label", {"query_id": q["id"], "annotator": "bob", "answer": "equal", "order": q["order"]})
    assert resp.status_code == 200 and resp.json()["counts"]["labelled"] == 2
    assert viewer.get("/api/stats").json()["annotators"].keys() == {"ann", "bob"}


def test_refusals_name_the_field(viewer):
    for change, field in [({"query_id": "2"}, "query_id"), ({"answer": "maybe"}, "answer"),
                          ({"order": [0, 0]}, "order"), ({"ranking": [0, 1]}, "ranking"),
                          ({"response_ms": -1}, "response_ms"), ({"annotator": ""}, "annotator"),
                          ({"repeat": 1}, "repeat"), ({"colour": 1}, "colour"), ({"\ud800": 1}, "\\ud800")]:
        resp = viewer.post("/api/label", VALID | change)
        assert_json_error(resp, 400)
        assert resp.json()["field"] == field, resp.json()
    assert viewer.labels() == []


# ----- repeats and waiting states (issue 13) -----------------------------------------------------

def _add_round(store, n: int, rng) -> None:
    """``n`` more queries, rendered at once (clip names only: the test never fetches them)."""
    ids = store.add_queries(rng.normal(size=(n, 2, 10, 11)).astype(np.float32),
                            rng.normal(size=(n, 2, 10, 3)).astype(np.float32), rng.normal(size=(n, 2, 10, 12)),
                            np.zeros((n, 2, 10), int))
    for qid in ids:
        store.mark_rendered(qid, [f"q{qid:06d}_{s}.mp4" for s in range(2)], 30.0, 6)


def test_repeats_are_one_draw_per_served_pair_and_never_close_to_their_original(tmp_path):
    """A client that polls every "second" while nothing is ready draws no extra repeats (issue 13: 6 of 21)."""
    from pbrl.human.store import LabelStore

    store = LabelStore.for_run(tmp_path)
    store.set_meta("budget", 1000)
    app = make_app(ViewerConfig(store.path, tmp_path / "human" / "clips", token=TOKEN, repeat_fraction=0.1,
                                repeat_gap=10, seed=0))
    client = TestClient(app, base_url=BASE)
    rng = np.random.default_rng(0)
    served: list[tuple[int, bool]] = []  # (query id, repeat) in the order the person saw them
    polls = 0
    while len(served) < 200:
        q = client.get("/api/next", params={"annotator": "ann"}, headers=AUTH).json()["query"]
        if q is None:  # between rounds: the page asks again every second, ten times, then the next round comes
            polls += 1
            if polls % 10 == 0:
                _add_round(store, 10, rng)
            continue
        served.append((q["id"], q["repeat"]))
        body = {"query_id": q["id"], "annotator": "ann", "answer": "left", "order": q["order"], "repeat": q["repeat"]}
        assert client.post("/api/label", json=body, headers=AUTH).status_code == 200
    repeats = [i for i, (_, r) in enumerate(served) if r]
    assert polls >= 100  # the client did spend long stretches polling with nothing ready
    assert 0.05 <= len(repeats) / len(served) <= 0.15, len(repeats)
    first = {qid: i for i, (qid, r) in reversed(list(enumerate(served))) if not r}
    gaps = [i - first[served[i][0]] for i in repeats]
    assert min(gaps) > 10, gaps  # never within repeat_gap (10) of its original, so never within 5


def test_no_repeats_once_the_budget_is_labelled(tmp_path):
    store = fake_store(tmp_path, n=3, frames=6)  # budget 3
    app = make_app(ViewerConfig(store.path, tmp_path / "human" / "clips", token=TOKEN, repeat_fraction=0.5,
                                repeat_gap=0, seed=1))
    client = TestClient(app, base_url=BASE)
    fresh = 0
    for _ in range(50):
        q = client.get("/api/next", params={"annotator": "ann"}, headers=AUTH).json()["query"]
        if q is None:
            break
        fresh += not q["repeat"]
        client.post("/api/label", json={"query_id": q["id"], "annotator": "ann", "answer": "left",
                                        "order": q["order"], "repeat": q["repeat"]}, headers=AUTH)
    assert fresh == 3 and q is None  # after the third fresh pair: nothing, not an endless stream of repeats
    state = client.get("/api/state", headers=AUTH).json()
    assert state["idle"]["kind"] == "all_done"


def test_undo_returns_the_pair_as_it_was_shown_and_it_is_served_first(tmp_path):
    store = fake_store(tmp_path, n=4, frames=6)
    app = make_app(ViewerConfig(store.path, tmp_path / "human" / "clips", token=TOKEN, repeat_fraction=0.5,
                                repeat_gap=0, seed=0))
    client = TestClient(app, base_url=BASE)
    for _ in range(3):
        q = client.get("/api/next", params={"annotator": "ann"}, headers=AUTH).json()["query"]
        client.post("/api/label", json={"query_id": q["id"], "annotator": "ann", "answer": "right",
                                        "order": q["order"], "repeat": q["repeat"]}, headers=AUTH)
    undone = client.post("/api/undo", json={"annotator": "ann"}, headers=AUTH).json()
    assert (undone["query"]["id"], undone["query"]["order"], undone["query"]["repeat"]) == (q["id"], q["order"],
                                                                                           q["repeat"])
    if not q["repeat"]:  # a fresh pair taken back is also the next one served, before any repeat draw
        for _ in range(5):
            assert client.get("/api/next", params={"annotator": "ann"}, headers=AUTH).json()["query"]["id"] == q["id"]


def test_state_names_why_nothing_is_shown(tmp_path):
    import time as time_

    store = fake_store(tmp_path, n=1, frames=6, render=False)  # budget 1
    app = make_app(ViewerConfig(store.path, tmp_path / "human" / "clips", token=TOKEN))
    client = TestClient(app, base_url=BASE)
    kind = lambda: client.get("/api/state", headers=AUTH).json()["idle"]  # noqa: E731
    assert kind()["kind"] == "rendering" and kind()["rendering"] == 1
    store.mark_rendered(1, ["a.mp4", "b.mp4"], 30.0, 6)
    assert kind()["kind"] == "ready"
    store.set_meta("budget", 5)
    client.post("/api/label", json={"query_id": 1, "annotator": "ann", "answer": "left", "order": [0, 1]},
                headers=AUTH)
    assert kind()["kind"] == "no_trainer"  # nothing waits and no trainer has said where it is
    for key, value in (("trainer_step", 1500), ("next_round_step", 2000), ("trainer_heartbeat", time_.time())):
        store.set_meta(key, value)
    assert (kind()["kind"], kind()["next_round_step"]) == ("next_round", 2000)
    store.set_meta("done", True)
    assert kind()["kind"] == "finished"
    assert client.get("/api/next", params={"annotator": "ann"}, headers=AUTH).json()["query"] is None


def test_labels_per_minute_counts_the_time_actually_spent(tmp_path):
    """Issue 13: 50 labels/min showed as 0.2-4.2, the last 5 minutes' count divided by 5 whatever the elapsed time."""
    from pbrl.human.store import LabelStore

    store = fake_store(tmp_path, n=12, frames=6)
    now = 1_000_000.0
    for qid in range(1, 11):  # ten labels, one every 1.2 s, the first shown 1.2 s before it was answered
        store.add_label(qid, "ann", "left", [0, 1], response_ms=1200)
    store.add_label(1, "ann", "right", [1, 0], is_repeat=True)
    ids = [r[0] for r in store.db.execute("SELECT id FROM labels ORDER BY id")]
    for i, label_id in enumerate(ids):
        store.db.execute("UPDATE labels SET created = ? WHERE id = ?", (now - 13.2 + 1.2 * (i + 1), label_id))
    rate = LabelStore(store.path).label_rate(now=now + 0.0)
    # 10 labels (and 1 repeat) in the 13.2 s since the first pair was shown
    assert rate["labels_per_minute"] == pytest.approx(10 / (13.2 / 60), rel=0.01)
    assert rate["repeats_per_minute"] == pytest.approx(1 / (13.2 / 60), rel=0.01)
    assert LabelStore(store.path).label_rate(now=now + 3600)["labels_per_minute"] is None  # an hour later: none
