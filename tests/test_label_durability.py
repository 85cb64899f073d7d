"""An acknowledged label survives a SIGKILL of the viewer's process (``pbrl/human/store.py``, ``server.py``).

The viewer runs in a separate process (this file run as a script: it serves an existing store and
prints its URL). Each cycle posts a label over real HTTP, kills the process with SIGKILL the moment
the 200 arrives, then reads the store back over a fresh connection and through a restarted viewer.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from human_fixtures import fake_store
from pbrl.human.store import LabelStore

TOKEN = "durability-token"
ANSWERS = ["left", "right", "equal", "cant_tell", "left"]


def serve(store_path: str, clip_dir: str) -> None:
    """The launcher: a viewer over ``store_path`` on a free port; prints its base URL, then waits to be killed."""
    from pbrl.human.server import ViewerConfig, ViewerServer, make_app

    server = ViewerServer(make_app(ViewerConfig(Path(store_path), Path(clip_dir), token=TOKEN)))
    print(f"http://127.0.0.1:{server.port}", flush=True)
    while True:
        time.sleep(3600)


class ViewerProcess:
    def __init__(self, store_path: Path, clip_dir: Path):
        self.proc = subprocess.Popen([sys.executable, __file__, str(store_path), str(clip_dir)],
                                     stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
        self.base = self.proc.stdout.readline().strip()  # EOF (""): the launcher died
        assert self.base.startswith("http://"), f"the viewer did not start (exit code {self.proc.poll()})"

    def call(self, path: str, body: dict | None = None) -> dict:
        headers = {"X-PBRL-Token": TOKEN, "Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            return json.loads(resp.read())

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def test_an_acknowledged_label_survives_sigkill(tmp_path):
    fake_store(tmp_path, n=len(ANSWERS), frames=6).close()
    store_path, clip_dir = tmp_path / "human" / "labels.sqlite", tmp_path / "human" / "clips"
    expected: dict[int, tuple[str, list[int]]] = {}
    viewer = ViewerProcess(store_path, clip_dir)
    try:
        for cycle, answer in enumerate(ANSWERS):
            # the restarted viewer sees every label acknowledged before the last kill
            assert viewer.call("/api/state")["counts"]["labelled"] == cycle
            q = viewer.call("/api/next?annotator=ann")["query"]
            assert q["id"] not in expected
            ack = viewer.call("/api/label", {"query_id": q["id"], "annotator": "ann", "answer": answer,
                                             "order": q["order"]})
            viewer.kill()  # right after the acknowledgement: no clean shutdown, no checkpoint
            assert ack["ok"] and ack["counts"]["labelled"] == cycle + 1
            expected[q["id"]] = (answer, q["order"])

            with sqlite3.connect(store_path) as db:  # a fresh connection, as a restarted trainer would open
                rows = db.execute("SELECT query_id, answer, shown_order FROM labels WHERE undone = 0").fetchall()
            assert {qid: (a, json.loads(order)) for qid, a, order in rows} == expected
            viewer = ViewerProcess(store_path, clip_dir)
        assert viewer.call("/api/state")["counts"]["labelled"] == len(ANSWERS)
    finally:
        if viewer.proc.poll() is None:
            viewer.kill()
    store = LabelStore(store_path)
    got = {qid: (lab["answer"], lab["shown_order"]) for qid, lab in store.training_labels().items()}
    store.close()
    assert got == expected


if __name__ == "__main__":
    serve(*sys.argv[1:3])
