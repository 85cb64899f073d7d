"""The labelling page (``pbrl/human/static``) in a real headless Chromium against the real server.

Checks what only a browser can: both clips decode and play on one clock, the keys label, undo and
rank, and the label store holds what the person answered. Uses the system Chromium through the
``playwright`` package (never a downloaded browser); skipped when no Chromium is installed.
"""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from human_fixtures import fake_store, write_synthetic_clip
from pbrl.human.browser import chromium_path, launch
from pbrl.human.server import ViewerConfig, ViewerServer, make_app
from pbrl.human.store import LabelStore

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")

CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

FPS = 30.0
FRAMES = 36  # 1.2 s clips: short to write, long enough to sample within one loop
ARTEFACTS = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts"

# Samples the shown clips in one evaluation: widths, whether the clock advances (summing forward
# steps, so a loop restart does not count against it) and the spread of the clips' times.
SAMPLE_JS = """async () => {
  const vs = [...document.querySelectorAll('#stage video.clip')];
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let last = vs[0].currentTime, advanced = 0, spread = [];
  for (let i = 0; i < 10; i++) {
    await sleep(50);
    const ts = vs.map((v) => v.currentTime);
    spread.push(Math.max(...ts) - Math.min(...ts));
    if (ts[0] > last) advanced += ts[0] - last;
    last = ts[0];
  }
  return {widths: vs.map((v) => v.videoWidth), advanced, spread, n: vs.length};
}"""


@pytest.fixture(scope="module")
def browser():
    """One headless system Chromium for the module."""
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@contextmanager
def open_viewer(browser, run_dir: Path, annotator: str | None = "tester", viewport=(1200, 760), **config) -> Iterator:
    """A server over ``run_dir``'s store and a page on it; fails the test on any page error.

    ``annotator``: the name the page remembers from an earlier visit (None: a first visit, which asks).
    ``config``: ViewerConfig settings (repeat_fraction, repeat_gap, seed).
    """
    server = ViewerServer(make_app(ViewerConfig(run_dir / "human" / "labels.sqlite", run_dir / "human" / "clips",
                                                **config)))
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    if annotator is not None:
        page.add_init_script(f"localStorage.setItem('pbrl.annotator', {annotator!r})")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.url)
        yield page
        assert not errors, f"errors in the page: {errors}"
    finally:
        page.close()
        server.close()


def state(page) -> dict:
    """The page's test hook: the query on screen, the clock, counters (see ``window.pbrl`` in app.js)."""
    return page.evaluate("pbrl.state()")


def wait_playing(page, timeout_ms: int = 15000) -> dict:
    """Wait until every clip on screen plays (a hard start has finished) and return the state."""
    page.wait_for_function("pbrl.state().playing", timeout=timeout_ms)
    return state(page)


def assert_plays_in_sync(page, k: int) -> None:
    """``k`` clips decoded, the clock moving, and no two clips more than a frame apart at any sample."""
    s = page.evaluate(SAMPLE_JS)
    assert s["n"] == k
    assert all(w > 0 for w in s["widths"]), s
    assert s["advanced"] > 0.25, f"the clock hardly moved in 0.5 s: {s}"
    assert max(s["spread"]) < 1 / FPS, f"clips drift apart by more than a frame: {s['spread']}"


def save_screenshot(page, tmp_path: Path, name: str) -> None:
    """Screenshot into the test's tmp dir and a copy into outputs/test-artifacts (git-ignored)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTEFACTS / name)


def test_pair_plays_in_sync_labels_and_undoes_by_keyboard(browser, tmp_path):
    store = fake_store(tmp_path, n=5, k=2, frames=FRAMES, fps=FPS)
    with open_viewer(browser, tmp_path) as page:
        wait_playing(page)
        assert_plays_in_sync(page, 2)
        page.wait_for_function("pbrl.state().held.length === 2")  # the next pair is leased and preloading
        held = state(page)["held"]
        assert held[0] != held[1]
        assert page.inner_text("#instruction") == "Which clip shows the better behaviour?"
        save_screenshot(page, tmp_path, "viewer.png")
        assert state(page)["annotator"] == "tester"  # remembered from an earlier visit: no prompt

        # typing a name must not trigger the keys ("z" undoes, "r" replays) and is remembered
        page.fill("#annotator", "")
        page.click("#annotator")
        page.keyboard.type("liz r")
        page.keyboard.press("Enter")
        s = state(page)
        assert (s["annotator"], s["labelsSent"], s["undos"]) == ("liz r", 0, 0)
        assert page.evaluate("localStorage.getItem('pbrl.annotator')") == "liz r"

        shown = []
        for i, key in enumerate(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"]):
            s = wait_playing(page)
            shown.append((s["queryId"], s["order"]))
            page.keyboard.press(key)
            page.wait_for_function(f"pbrl.state().labelsSent === {i + 1} && pbrl.state().queryId !== {s['queryId']}")
            t = time.perf_counter()
            wait_playing(page)
            assert time.perf_counter() - t < 3.0, "the preloaded pair did not start at once"

        page.keyboard.press("Backspace")  # undo: the last labelled pair comes back first
        page.wait_for_function(f"pbrl.state().undos === 1 && pbrl.state().queryId === {shown[-1][0]}")

        # a refused label shows its error and keeps the pair
        page.route("**/api/label", lambda route: route.fulfill(
            status=400, content_type="application/json", body='{"error": "test refusal", "field": "answer"}'))
        wait_playing(page)
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("pbrl.state().message !== null && pbrl.state().message.includes('test refusal')")
        assert state(page)["queryId"] == shown[-1][0]
        page.unroute("**/api/label")

        # the live progress shows the trainer waiting for labels
        store.set_meta("trainer_step", 12000)
        store.set_meta("total_steps", 100000)
        store.set_meta("waiting_since", time.time())
        page.wait_for_selector("#waiting-banner:not([hidden])", timeout=5000)
        assert "12,000 / 100,000" in page.inner_text("#trainer")

        page.click("#stats-button")
        page.wait_for_selector("#stats-body table")
        assert "liz r" in page.inner_text("#stats-body")

    labels = LabelStore(store.path).labels(include_undone=True)
    assert [lab["answer"] for lab in labels] == ["left", "right", "equal", "cant_tell"]
    assert [(lab["query_id"], lab["shown_order"]) for lab in labels] == [(q, o) for q, o in shown]
    assert [lab["undone"] for lab in labels] == [0, 0, 0, 1]
    assert {lab["annotator"] for lab in labels} == {"liz r"}
    assert all(lab["response_ms"] > 0 and isinstance(lab["replays"], int) and not lab["is_repeat"] for lab in labels)


def test_ranking_mode_ranks_k_clips_by_number_keys(browser, tmp_path):
    store = fake_store(tmp_path, n=2, k=3, frames=FRAMES, fps=FPS)
    with open_viewer(browser, tmp_path) as page:
        s = wait_playing(page)
        assert_plays_in_sync(page, 3)
        page.keyboard.press("1")
        page.keyboard.press("Backspace")  # takes back the pick, not a label
        assert state(page)["ranking"] == [] and state(page)["undos"] == 0
        page.keyboard.press("3")
        page.keyboard.press("1")
        page.wait_for_function("pbrl.state().ranking.length === 2")
        save_screenshot(page, tmp_path, "viewer-ranking.png")
        page.keyboard.press("2")  # the last pick submits
        page.wait_for_function("pbrl.state().labelsSent === 1")

    (label,) = LabelStore(store.path).labels()
    order = s["order"]
    assert label["query_id"] == s["queryId"] and label["answer"] == "ranking"
    assert label["shown_order"] == order
    assert label["ranking"] == [order[2], order[0], order[1]]  # screen positions mapped to stored segments


def test_waits_for_clips_then_shows_them(browser, tmp_path):
    store = fake_store(tmp_path, n=1, k=2, frames=FRAMES, fps=FPS, render=False)
    with open_viewer(browser, tmp_path) as page:
        page.wait_for_selector("#empty:not([hidden])", timeout=5000)
        assert "rendering the clips of 1 query" in page.inner_text("#empty").lower()
        clip_dir = tmp_path / "human" / "clips"
        names = [f"late_{s}.mp4" for s in range(2)]
        for s, name in enumerate(names):
            write_synthetic_clip(clip_dir / name, (90 + 60 * s, 90, 90), FRAMES, FPS)
        store.mark_rendered(1, names, FPS, FRAMES)
        wait_playing(page)
        assert state(page)["queryId"] == 1


def _store_with_shared_clips(run_dir: Path, n: int, k: int = 2) -> LabelStore:
    """``n`` ready queries whose clips are two shared files (writing n distinct clips would take a while)."""
    store = fake_store(run_dir, n=n, k=k, frames=FRAMES, fps=FPS, render=False)
    clip_dir = run_dir / "human" / "clips"
    names = [f"shared_{s}.mp4" for s in range(k)]
    for s, name in enumerate(names):
        write_synthetic_clip(clip_dir / name, (80 + 50 * s, 90, 140 - 40 * s), FRAMES, FPS)
    for qid in range(1, n + 1):
        store.mark_rendered(qid, names, FPS, FRAMES)
    return store


def _answer_and_wait_for_next(page, key: str, within_s: float = 2.0) -> dict:
    """Press ``key`` on the pair on stage; a different pair must be playing within ``within_s`` seconds."""
    before = state(page)
    sent = before["labelsSent"]
    t = time.perf_counter()
    page.keyboard.press(key)
    try:
        page.wait_for_function(f"(() => {{ const s = pbrl.state(); return s.labelsSent === {sent + 1} && "
                               f"s.queryId !== null && s.queryId !== {before['queryId']} && s.playing; }})()",
                               timeout=within_s * 1000)
    except sync_api.TimeoutError:
        s = state(page)
        raise AssertionError(f"no playing pair {within_s} s after answering query {before['queryId']}: "
                             f"queryId={s['queryId']} held={s['held']} idle={s.get('idle')} ({s.get('idleText')}), "
                             f"header={page.inner_text('#progress-text')!r}") from None
    return {"query": before["queryId"], "order": before["order"], "s": time.perf_counter() - t}


def test_forty_answers_with_an_undo_after_every_fifth_never_leave_the_stage_empty(browser, tmp_path):
    """The stall of issue 13: after an undo the page stopped leasing pairs while the header said "19 ready"."""
    store = _store_with_shared_clips(tmp_path, n=60)
    keys = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowLeft", "ArrowDown"]
    answered, waits = 0, []
    with open_viewer(browser, tmp_path, repeat_fraction=0.1, repeat_gap=5) as page:
        wait_playing(page)
        while answered < 40:
            for key in keys:
                header = re.search(r"(\d+) ready", page.inner_text("#progress-text"))
                assert header and int(header[1]) > 0, page.inner_text("#progress-text")  # pairs wait ...
                got = _answer_and_wait_for_next(page, key)  # ... so one must be playing within 2 s
                waits.append(got["s"])
                answered += 1
            # undo the fifth: that pair comes back on stage (playing) within 2 s, and is answered again
            last = got["query"]
            page.keyboard.press("Backspace")
            page.wait_for_function(f"pbrl.state().queryId === {last} && pbrl.state().playing", timeout=2000)
        final = state(page)
    assert answered >= 40 and final["undos"] == 8
    labels = LabelStore(store.path).labels(include_undone=True)
    assert len(labels) == final["labelsSent"] == 40 and sum(lab["undone"] for lab in labels) == 8
    assert max(waits) < 2.0


def test_the_undone_pair_is_the_next_one_shown_even_with_repeats_due(browser, tmp_path):
    """With half the pairs repeats, the server must not draw a repeat before the pair just taken back."""
    store = _store_with_shared_clips(tmp_path, n=30)
    with open_viewer(browser, tmp_path, repeat_fraction=0.5, repeat_gap=0, seed=3) as page:
        wait_playing(page)
        for _ in range(6):
            for key in ("ArrowLeft", "ArrowRight"):
                got = _answer_and_wait_for_next(page, key)
            page.keyboard.press("z")
            page.wait_for_function(f"pbrl.state().queryId === {got['query']}", timeout=2000)
            s = wait_playing(page, 2000)
            assert s["order"] == got["order"]  # as it was shown, sides included
        assert state(page)["undos"] == 6
    assert LabelStore(store.path).counts()["repeats"] > 0  # repeats were being drawn all along


def test_a_first_visit_asks_who_is_labelling(browser, tmp_path):
    store = _store_with_shared_clips(tmp_path, n=3)
    with open_viewer(browser, tmp_path, annotator=None) as page:
        page.wait_for_selector("#who[open]")
        page.keyboard.press("ArrowLeft")  # keys do nothing while the name is asked
        assert state(page)["labelsSent"] == 0 and state(page)["queryId"] is None
        page.fill("#who-name", "ada")
        page.keyboard.press("Enter")
        wait_playing(page)
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("pbrl.state().labelsSent === 1")
        assert page.evaluate("localStorage.getItem('pbrl.annotator')") == "ada"
    assert [lab["annotator"] for lab in LabelStore(store.path).labels()] == ["ada"]


def test_waiting_states_name_what_the_page_waits_for(browser, tmp_path):
    """Rendering N / the agent's next round at step X / all done / training finished, and a stopped server."""
    store = fake_store(tmp_path, n=1, k=2, frames=FRAMES, fps=FPS, render=False)
    store.set_meta("budget", 2)
    store.set_meta("trainer_step", 4000)
    store.set_meta("total_steps", 20000)
    store.set_meta("trainer_heartbeat", time.time() + 3600)
    with open_viewer(browser, tmp_path) as page:
        page.wait_for_function("pbrl.state().idle === 'rendering'", timeout=5000)
        assert "Rendering the clips of 1 query" in page.inner_text("#empty")
        names = [f"r_{s}.mp4" for s in range(2)]
        for s, name in enumerate(names):
            write_synthetic_clip(tmp_path / "human" / "clips" / name, (90 + 60 * s, 90, 90), FRAMES, FPS)
        store.mark_rendered(1, names, FPS, FRAMES)
        wait_playing(page)
        store.set_meta("next_round_step", 5000)
        page.keyboard.press("ArrowLeft")  # the only query: the agent asks again at step 5,000
        page.wait_for_function("pbrl.state().idle === 'next_round'", timeout=5000)
        assert "next round at step 5,000" in page.inner_text("#empty")
        rng = np.random.default_rng(1)
        store.add_queries(rng.normal(size=(1, 2, 10, 11)).astype(np.float32),
                          rng.normal(size=(1, 2, 10, 3)).astype(np.float32), rng.normal(size=(1, 2, 10, 12)),
                          np.zeros((1, 2, 10), int))
        store.mark_rendered(2, names, FPS, FRAMES)
        wait_playing(page)
        page.keyboard.press("ArrowRight")  # the budget's last query
        page.wait_for_function("pbrl.state().idle === 'all_done'", timeout=5000)
        assert "All done" in page.inner_text("#empty") and "until step 20,000" in page.inner_text("#empty")
        save_screenshot(page, tmp_path, "viewer-all-done.png")
        store.set_meta("done", True)
        store.set_meta("unused_labels", 0)
        page.wait_for_function("pbrl.state().idle === 'finished'", timeout=5000)
        assert "Training has finished" in page.inner_text("#empty")
    # the server is gone: the page says so and refuses answers instead of failing on each key
    page = browser.new_page()
    try:
        server = ViewerServer(make_app(ViewerConfig(tmp_path / "human" / "labels.sqlite", tmp_path / "human" / "clips")))
        page.add_init_script("localStorage.setItem('pbrl.annotator', 'tester')")
        page.goto(server.url)
        page.wait_for_function("pbrl.state().idle === 'finished'", timeout=5000)
        server.close()
        page.wait_for_function("pbrl.state().offline", timeout=5000)
        assert page.is_disabled("button[data-answer='left']")
        assert "server has stopped" in page.inner_text("#empty")
    finally:
        page.close()
