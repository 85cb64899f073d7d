"""The human teacher end to end: a run that waits for (or folds in) labels given over HTTP, restarts
that lose nothing, export/import, ``pbrl-label`` and config errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, default_sigint, tiny_config
from human_fixtures import fake_store
from pbrl.envs.render import configure_mujoco_gl
from pbrl.errors import ConfigError
from pbrl.human.exchange import export_store, import_store, load_labels
from pbrl.human.store import LabelStore
from pbrl.human.teacher import HumanTeacher
from pbrl.buffers.episodes import QueryPool
from pbrl.teachers.base import RoundInfo
from pbrl.preference import PreferenceFeedback
from pbrl.workspace import Workspace

needs_gl = pytest.mark.skipif(configure_mujoco_gl() is None,
                              reason="no headless GL for MuJoCo (install libegl1 libgl1 libosmesa6)")

# short segments and small clips keep these runs quick (teacher.min_clip_s=0 keeps the 20-step segments)
HUMAN = ["teacher=human", "env=hopper", "env.terminate=false", "seed_steps=300", "pretrain.steps=300",
         "feedback.mb_size=3", "feedback.num_interact=400", "feedback.segment=20", "teacher.undo_grace_s=0.2",
         "teacher.repeat_fraction=0", "teacher.min_clip_s=0", "teacher.clip.width=160", "teacher.clip.height=120"]


def _label_over_http(url_file: Path, answers: list[str], stop: threading.Event, given: list) -> None:
    """A person at the viewer: takes each ready query and answers it, cycling through ``answers``."""
    while not url_file.exists() and not stop.is_set():
        time.sleep(0.05)
    base, token = url_file.read_text().strip().split("/?token=")
    headers = {"X-PBRL-Token": token, "Content-Type": "application/json"}
    while not stop.is_set():
        try:
            q = json.load(urllib.request.urlopen(urllib.request.Request(f"{base}/api/next?annotator=tester",
                                                                        headers=headers)))["query"]
            if q is None:
                time.sleep(0.05)
                continue
            answer = answers[len(given) % len(answers)]
            body = json.dumps({"query_id": q["id"], "annotator": "tester", "answer": answer, "order": q["order"]})
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/label", data=body.encode(), headers=headers))
        except urllib.error.URLError:  # the run ended and its viewer with it
            return
        given.append((q["id"], answer, q["order"]))


def _train_with_person(run_dir: Path, overrides: list[str], answers=("left", "right", "equal", "cant_tell")):
    stop, given = threading.Event(), []
    person = threading.Thread(target=_label_over_http, args=(run_dir / "human" / "viewer_url.txt", list(answers),
                                                             stop, given), daemon=True)
    person.start()
    try:
        ws = Workspace(tiny_config(*HUMAN, *overrides), run_dir)
        summary = ws.train()
    finally:
        stop.set()
        person.join(5)
    return ws, summary, given


@needs_gl
def test_sync_run_waits_for_the_persons_labels_and_trains_on_them(tmp_path):
    ws, summary, given = _train_with_person(tmp_path / "run", ["steps=1500", "feedback.max_feedback=6"])
    assert summary["feedback_asked"] == 6
    # every answer but "can't tell" is trained on; the learner got exactly what the person gave
    trained = [g for g in given if g[1] != "cant_tell"]
    assert len(given) == 6 and summary["labels"] == len(trained) == len(ws.feedback.learner.labels)
    assert ws.feedback.learner.outcomes["skip"] == 6 - len(trained)
    store = LabelStore.for_run(tmp_path / "run")
    assert store.counts()["labelled"] == 6 and store.get_meta("done") is True
    # sync: every round waited for its labels, so none came after the last one; the run says so at the end
    assert store.get_meta("unused_labels") == 0 and store.get_meta("unlabelled_at_end") == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "label at http://127.0.0.1:" in log and log.count("feedback round") == 2
    assert f"finished {tmp_path / 'run'}: 1500 steps" in log and "(6 labels from the person)" in log
    # each label's segments in the learner match the stored segments of its query, with the stored target
    by_query = store.training_labels()
    qid, answer, order = next(g for g in given if g[1] == "left")
    seg = store.segments(qid)
    row = next(i for i in range(len(ws.feedback.learner.labels)) if np.array_equal(ws.feedback.learner.labels.obs[i], seg["obs"]))
    assert ws.feedback.learner.labels.ranking[row][0] == order[0] and by_query[qid]["answer"] == "left"
    # the first label taken ends the state-entropy phase; the rendered clips exist
    assert len(list((tmp_path / "run" / "human" / "clips").glob("*.mp4"))) == 12


@needs_gl
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_prefppo_with_a_person_renders_clips_from_stored_states_and_trains_on_the_labels(tmp_path, mode):
    """agent=ppo with 2 vector envs: queries drawn from the episode store, rendered, labelled over HTTP."""
    ppo = ["agent=ppo", "agent.n_envs=2", "agent.n_steps=100", "agent.batch_size=50", "agent.n_epochs=1",
           "agent.hidden_dim=32", "seed_steps=0", f"teacher.mode={mode}"]
    steps = 1400 if mode == "sync" else 12000  # async: PPO runs on while clips render and the person answers
    ws, summary, given = _train_with_person(tmp_path / "run", [*ppo, f"steps={steps}", "feedback.max_feedback=6"],
                                            answers=("left",))
    assert summary["agent"] == "ppo" and summary["n_envs"] == 2 and summary["feedback_asked"] == 6
    assert len(given) >= 3 and summary["labels"] == len(ws.feedback.learner.labels) >= 3
    store = LabelStore.for_run(tmp_path / "run")
    assert len(list((tmp_path / "run" / "human" / "clips").glob("*.mp4"))) >= 2 * len(given)  # 2 clips per query
    seg = store.segments(given[0][0])  # each segment: one episode's consecutive steps in the episode store
    for k, rows in enumerate(seg["index"]):
        assert len(set(ws.store.episode[rows])) == 1 and (np.diff(ws.store.step[rows]) == 1).all()
        np.testing.assert_array_equal(ws.store.obs[rows], seg["obs"][k])


@needs_gl
def test_async_run_keeps_training_and_folds_labels_in(tmp_path):
    ws, summary, given = _train_with_person(tmp_path / "run", ["steps=2000", "feedback.max_feedback=9",
                                                               "teacher.mode=async"], answers=("left",))
    assert summary["env_steps"] == 2000 and summary["feedback_asked"] == 9
    # labels that arrived before the last round were folded in; none were lost or duplicated
    assert 0 < summary["labels"] <= len(given) <= 9
    assert len(set(q for q, _, _ in given)) == len(given)


def _pool(store_rng, n=2, k=2, t=5, o=11, a=3, d=12) -> QueryPool:
    rng = np.random.default_rng(store_rng)
    return QueryPool(np.arange(n * k * t).reshape(n, k, t), torch.randn(n, k, t, o), torch.randn(n, k, t, a),
                     rng.normal(size=(n, k, t, d)))


@needs_gl
def test_a_restarted_teacher_loses_no_label_and_asks_no_labelled_query_again(tmp_path):
    cfg = {"name": "human", "serve": False, "undo_grace_s": 0.0}
    t1 = HumanTeacher(cfg, LabelStore.for_run(tmp_path), "Hopper-v5", k=2, budget=10, log=lambda m: None)
    t1.ask(_pool(0, n=3), RoundInfo(0))
    store = LabelStore.for_run(tmp_path)
    store.db.execute("UPDATE queries SET status = 'ready', clips = '[]', clip_fps = 30, clip_frames = 1")
    store.add_label(1, "p", "left", [0, 1])
    (got_pool, got), = t1.collect(wait=False)
    assert len(got.ranking) == 1 and t1.pending() == 2
    snapshot = t1.state_dict()  # the run's snapshot is taken here ...
    store.add_label(2, "p", "right", [1, 0])
    assert len(t1.collect(wait=False)[0][1].ranking) == 1  # ... and this label is taken after it
    t1.close()
    # the trainer restarts from the snapshot: label 2 is handed over again, query 3 is still pending
    t2 = HumanTeacher(cfg, LabelStore.for_run(tmp_path), "Hopper-v5", k=2, budget=10, log=lambda m: None)
    t2.load_state_dict(snapshot)
    (pool2, again), = t2.collect(wait=False)
    assert len(again.ranking) == 1 and np.array_equal(pool2.obs[0].numpy(), store.segments(2)["obs"])
    assert again.ranking[0].tolist() == [0, 1]  # "right" with segment 0 shown on the right
    assert t2.pending() == 1 and t2.already_asked() == 3
    assert store.next_query("p")[0]["id"] == 3  # labelled queries are not asked again
    t2.close()


def test_export_and_import_keep_every_label_and_its_training_target(tmp_path):
    store = fake_store(tmp_path / "a", n=4, k=2, render=False)
    store.db.execute("UPDATE queries SET status = 'ready', clips = '[]', clip_fps = 30, clip_frames = 1")
    store.add_label(1, "ann", "left", [1, 0])  # segment 1 shown left wins
    store.add_label(2, "ann", "equal", [0, 1])
    store.add_label(3, "ann", "cant_tell", [0, 1])
    store.add_label(4, "ann", "right", [0, 1])
    store.undo_last("ann")
    store.add_label(4, "bob", "left", [0, 1])
    store.add_label(1, "bob", "right", [0, 1], is_repeat=True)
    export_store(store, tmp_path / "export")
    rows = [json.loads(line) for line in (tmp_path / "export" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and sum(r["undone"] for r in rows) == 1 and sum(r["is_repeat"] for r in rows) == 1
    labels, meta = load_labels(tmp_path / "export")
    assert meta["k"] == 2 and len(labels) == 3  # can't tell, the undone label and the repeat are not trained on
    assert labels.ranking.tolist() == [[1, 0], [0, 1], [0, 1]] and labels.equal.tolist() == [False, True, False]
    assert np.array_equal(labels.obs[0], store.segments(1)["obs"])
    fresh = LabelStore.for_run(tmp_path / "b")
    assert import_store(tmp_path / "export", fresh) == {"queries": 4, "labels": 5}
    assert {q: lab["answer"] for q, lab in fresh.training_labels().items()} == \
        {q: lab["answer"] for q, lab in store.training_labels().items()}


def test_bad_human_teacher_settings_name_the_field(tmp_path):
    for override, field in (("teacher.mode=later", "teacher.mode"), ("teacher.port=99999", "teacher.port"),
                            ("teacher.clip.format=avi", "teacher.clip.format"),
                            ("teacher.repeat_fraction=0.9", "teacher.repeat_fraction"),
                            ("+teacher.colour=red", "teacher.colour")):
        with pytest.raises(ConfigError) as err:
            Workspace(tiny_config("teacher=human", override), tmp_path / override)
        assert field in str(err.value)


def _label_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pbrl.human.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@needs_gl
def test_pbrl_label_demo_renders_queries_and_serves_them(tmp_path):
    """The demo makes a run, renders its 2 queries' 4 clips while serving, and stops cleanly on Ctrl-C. The test
    waits for the clips rather than a fixed time: rendering takes several times longer on a loaded machine."""
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.human.cli", "--demo", "--queries", "2"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    clips, deadline = [], time.time() + 120
    try:
        while len(clips) < 4 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
            clips = list(tmp_path.glob("outputs/label-demo/*/human/clips/*.mp4"))  # written whole (atomic rename)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the viewer and the render worker stop
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # leave no server behind
            raise
    assert proc.returncode == 0 and len(clips) == 4, err
    assert "open http://127.0.0.1:" in out and "token=" in out
    run_dir, = (tmp_path / "outputs" / "label-demo").iterdir()
    export = _label_cli(str(run_dir), "--export", str(tmp_path / "exp"), cwd=tmp_path)
    assert export.returncode == 0 and "exported 0 labels" in export.stdout


def test_pbrl_label_timeout_stops_serving_a_run_after_that_many_seconds(tmp_path):
    fake_store(tmp_path / "run", n=2)
    started = time.time()
    out = _label_cli(str(tmp_path / "run"), "--timeout", "1", "--render", "no", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "open http://127.0.0.1:" in out.stdout and time.time() - started < 60


def test_pbrl_label_explains_a_run_without_a_store(tmp_path):
    out = _label_cli(str(tmp_path), cwd=REPO)
    assert out.returncode == 2 and "has no label store" in out.stderr and "Traceback" not in out.stderr


@needs_gl
def test_killing_the_trainer_while_it_waits_loses_no_label_and_asks_nothing_twice(tmp_path):
    """Round 2 is asked and waits; the trainer is killed; a restart waits for the same queries, not new ones."""
    import os
    import signal

    from helpers import TINY, run_train, start_train

    run = tmp_path / "run"
    args = [*TINY, *HUMAN, "steps=1200", "feedback.max_feedback=6", "snapshot.every=800", "eval.every=0",
            "eval.episodes=1", "eval.video=none", "logger.tensorboard=false", f"hydra.run.dir={run}"]
    proc = start_train(args, tmp_path, tmp_path / "first.log")
    stop, given = threading.Event(), []
    person = threading.Thread(target=_label_over_http, args=(run / "human" / "viewer_url.txt", ["left"], stop, given),
                              daemon=True)
    person.start()
    store_path = run / "human" / "labels.sqlite"
    deadline = time.time() + 120
    while len(given) < 3 and time.time() < deadline:  # round 1 (step 600) answered ...
        time.sleep(0.05)
    stop.set()  # ... then the person leaves
    while time.time() < deadline and not (store_path.exists() and LabelStore(store_path).counts()["queries"] == 6):
        time.sleep(0.1)  # round 2 (step 1000) is asked and waits for the person
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = LabelStore(store_path)
    assert store.counts()["labelled"] == 3 and store.counts()["queries"] == 6
    # the person comes back while the run restarts from its step-800 snapshot
    stop2, given2 = threading.Event(), []
    (run / "human" / "viewer_url.txt").unlink()
    person2 = threading.Thread(target=_label_over_http, args=(run / "human" / "viewer_url.txt", ["right"], stop2,
                                                              given2), daemon=True)
    person2.start()
    out = run_train(args, tmp_path, timeout=180)
    stop2.set()
    assert out.returncode == 0, out.stdout[-3000:]
    assert "resumed" in out.stdout
    summary = json.loads((run / "summary.json").read_text())
    counts = store.counts()
    assert counts["queries"] == 6 and counts["labelled"] == 6  # round 2's queries were answered, none asked again
    assert sorted(q for q, _, _ in given + given2) == list(range(1, 7))
    assert summary["feedback_asked"] == 6 and summary["labels"] == 6


@needs_gl
def test_a_crashed_render_worker_is_restarted_and_renders_what_waits(tmp_path):
    from pbrl.human.worker import RenderWorker, wait_rendered

    store = fake_store(tmp_path, n=2, render=False)  # 12-number states: Hopper's qpos ++ qvel
    worker = RenderWorker(store.path, tmp_path / "human" / "clips", "Hopper-v5").start()
    try:
        worker._proc.kill()  # the render process crashes
        worker._proc.wait()
        assert "restarted (1/3)" in worker.check() and worker.alive
        wait_rendered(store, timeout=60)
        assert [r["status"] for r in store.db.execute("SELECT status FROM queries")] == ["ready", "ready"]
        assert len(list((tmp_path / "human" / "clips").glob("q*.mp4"))) == 4
    finally:
        worker.stop()


def _answer_what_waits(url_file: Path, given: list, limit: int | None = None, timeout: float = 60) -> None:
    """A person who answers now: waits for the clips in production, then labels up to ``limit`` ready pairs."""
    base, token = url_file.read_text().strip().split("/?token=")
    headers = {"X-PBRL-Token": token, "Content-Type": "application/json"}
    get = lambda path: json.load(urllib.request.urlopen(urllib.request.Request(base + path, headers=headers)))  # noqa: E731
    deadline = time.time() + timeout
    while get("/api/state")["counts"]["rendering"] and time.time() < deadline:
        time.sleep(0.05)
    n = 0
    while limit is None or n < limit:
        q = get("/api/next?annotator=late")["query"]
        if q is None:
            return
        body = json.dumps({"query_id": q["id"], "annotator": "late", "answer": "left", "order": q["order"]})
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/label", data=body.encode(), headers=headers))
        given.append(q["id"])
        n += 1


@needs_gl
def test_async_labels_after_the_last_round_train_a_final_update_and_later_ones_are_reported(tmp_path, monkeypatch):
    """Issue 13: the viewer said 15/15 labelled, summary.json said 9, and nothing told the person."""
    run = tmp_path / "run"
    url_file = run / "human" / "viewer_url.txt"
    given: list[int] = []
    fold_in = PreferenceFeedback._fold_in_late_labels

    def person_answers_late(self, step):
        _answer_what_waits(url_file, given, limit=8)  # after the last round (1400) and before the run ends ...
        fold_in(self, step)

    monkeypatch.setattr(PreferenceFeedback, "_fold_in_late_labels", person_answers_late)
    ws = Workspace(tiny_config(*HUMAN, "steps=1700", "feedback.max_feedback=9", "teacher.mode=async"), run)
    summary = ws.train()
    assert summary["feedback_asked"] == 9 and len(given) == 8
    assert summary["labels"] == 8 == len(ws.feedback.learner.labels)  # the eight were trained on at the end
    import csv

    rounds = list(csv.DictReader(open(run / "rounds.csv")))
    assert float(rounds[-1]["env_step"]) == 1700 and float(rounds[-1]["new_labels"]) == 8  # a logged round
    assert (run / "reward_model.pt").exists()
    log = (run / "train.log").read_text()
    assert "final reward update at step 1700: 8 labels arrived after the last round" in log
    assert "(8 labels from the person; 1 query was left unlabelled)" in log
    store = LabelStore.for_run(run)
    assert store.get_meta("done") is True and store.get_meta("unlabelled_at_end") == 1  # the viewer says the same
    # from the final update on the run takes no more labels: the ninth pair is no longer offered, and a late
    # answer to it is refused (the person is told) rather than stored and silently unused
    import warnings

    from pbrl.human.server import ViewerConfig, make_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    app = make_app(ViewerConfig(store.path, store.path.parent / "clips", token="t"))
    client = TestClient(app, base_url="http://127.0.0.1:8000", headers={"X-PBRL-Token": "t"})
    assert client.get("/api/next", params={"annotator": "late"}).json()["query"] is None
    (ninth,) = [q for q in range(1, 10) if q not in given]
    refused = client.post("/api/label", json={"query_id": ninth, "annotator": "late", "answer": "left", "order": [0, 1]})
    assert refused.status_code == 409 and "training has finished" in refused.json()["error"]


def test_labels_given_after_the_last_update_are_reported(tmp_path):
    """A label that slips in between the final reward update and the end is named, to the person and in the log."""
    cfg = {"name": "human", "serve": False, "undo_grace_s": 0.0}
    teacher = HumanTeacher(cfg, LabelStore.for_run(tmp_path), "Hopper-v5", k=2, budget=10, log=lambda m: None)
    try:
        teacher.ask(_pool(0, n=3), RoundInfo(0))
        store = LabelStore.for_run(tmp_path)
        store.db.execute("UPDATE queries SET status = 'ready', clips = '[]', clip_fps = 30, clip_frames = 1")
        store.add_label(1, "p", "left", [0, 1])
        teacher.collect(wait=False)  # the last reward update takes label 1 ...
        store.add_label(2, "p", "right", [0, 1])  # ... label 2 comes a moment later
        note = teacher.finish()
    finally:
        teacher.close()
    assert note == "1 labels from the person; 1 arrived after the last reward update and was not used; " \
                   "1 query was left unlabelled"
    assert (store.get_meta("unused_labels"), store.get_meta("unlabelled_at_end"), store.get_meta("done")) == (1, 1, True)


def test_a_person_gets_clips_of_at_least_a_second(tmp_path):
    """teacher.min_clip_s raises feedback.segment (Hopper: 50 steps = 0.4 s -> 125 steps = 1 s), and says so."""
    def workspace(run_dir, *overrides):
        ws = Workspace(tiny_config("teacher=human", "env=hopper", "teacher.serve=false", "feedback.segment=50",
                                   *overrides), run_dir)
        ws.feedback.learner.teacher.close()
        return ws, (run_dir / "train.log").read_text() if (run_dir / "train.log").exists() else ""

    ws, log = workspace(tmp_path / "raised", "env.terminate=false")
    assert ws.cfg["feedback"]["segment"] == 125 and ws.feedback.learner.length == 125
    assert "feedback.segment 50 -> 125 steps" in log
    assert "segment: 125" in (tmp_path / "raised" / "config.yaml").read_text()
    # episodes that end when the hopper falls are often shorter than 1 s: a 125-step first round could wait forever
    ws, log = workspace(tmp_path / "falls")
    assert ws.feedback.learner.length == 50 and "with env.terminate=false" in log and "raised to 125 steps" in log
    ws, log = workspace(tmp_path / "kept", "env.terminate=false", "teacher.min_clip_s=0")
    assert ws.feedback.learner.length == 50 and "feedback.segment" not in log
