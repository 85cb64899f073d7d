"""The clip render worker: a separate process that turns new queries into clip files.

It polls the label store for queries whose clips are missing, restores each segment's simulator
states into its own environment, writes one clip per segment into the run's clip folder and only
then marks the query ready, so the viewer never shows a pair before both clips are complete. A
segment that fails to render marks its query failed (it is then not asked) and the worker moves on;
a crash of the whole process cannot take the training run with it, and ``RenderWorker`` restarts
it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ClipSettings:
    """How clips look; ``teacher.clip`` in the config."""

    width: int = 640  # 480p: a 320 x 240 clip scaled to half a laptop screen looks soft
    height: int = 480
    fps: float = 25.0  # target frame rate (every k-th env step is drawn; Hopper: every 5th, 25 fps)
    hold_s: float = 0.2  # the last frame is held this long at the loop point
    format: str = "mp4"  # mp4 (H.264) | webm (VP9) | gif


def clip_name(query_id: int, segment: int, fmt: str) -> str:
    return f"q{query_id:06d}_{segment}.{fmt}"


def render_pending(store, renderer, clip_dir: Path, fmt: str, limit: int = 4) -> int:
    """Render the clips of up to ``limit`` waiting queries; returns how many queries it finished."""
    done = 0
    for qid in store.to_render(limit):
        try:
            states = store.segments(qid)["sim_state"]  # [K, T, d]
            names, info = [], None
            for s in range(len(states)):
                name = clip_name(qid, s, fmt)
                info = renderer.render(states[s], clip_dir / name)
                names.append(name)
            store.mark_rendered(qid, names, info.fps, info.frames)
        except Exception as exc:  # noqa: BLE001 - one bad segment must not stop the others
            store.mark_failed(qid, "".join(traceback.format_exception_only(type(exc), exc)).strip())
        done += 1
    return done


def run_worker(store_path: str, clip_dir: str, env_id: str, env_kwargs: dict | None, settings: dict,
               poll_s: float = 0.1, parent: int | None = None) -> None:
    """The worker's loop: render what waits, sleep ``poll_s`` when nothing does; ends on SIGTERM or when ``parent`` dies."""
    from pbrl.human.clips import ClipRenderer
    from pbrl.human.store import LabelStore

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    store = LabelStore(store_path)
    clips = Path(clip_dir)
    clips.mkdir(parents=True, exist_ok=True)
    with ClipRenderer(env_id, env_kwargs, settings["width"], settings["height"], settings["fps"],
                      settings["hold_s"], settings["format"]) as renderer:
        while not stopping and (parent is None or os.getppid() == parent):
            if not render_pending(store, renderer, clips, settings["format"]):
                time.sleep(poll_s)
    store.close()


@dataclass
class RenderWorker:
    """Owns the render process: start, restart after a crash (up to ``max_restarts``), stop.

    The worker is a fresh interpreter (``python -m pbrl.human.worker``), not a fork: it inherits no
    torch threads or GL state, and it starts the same way from a script, a notebook or pbrl-train.
    Its output goes to ``clip_dir/../render.log``.
    """

    store_path: Path
    clip_dir: Path
    env_id: str
    env_kwargs: dict | None = None
    settings: ClipSettings = field(default_factory=ClipSettings)
    poll_s: float = 0.1
    max_restarts: int = 3
    restarts: int = 0

    def start(self) -> "RenderWorker":
        args = {"store_path": str(self.store_path), "clip_dir": str(self.clip_dir), "env_id": self.env_id,
                "env_kwargs": self.env_kwargs, "settings": asdict(self.settings), "poll_s": self.poll_s,
                "parent": os.getpid()}
        # one core at most: Mesa's llvmpipe would otherwise rasterise on every core, taking the trainer's
        env = dict(os.environ, OMP_NUM_THREADS="1", LP_NUM_THREADS="1")
        self._log = open(Path(self.clip_dir).parent / "render.log", "ab")
        self._proc = subprocess.Popen([sys.executable, "-m", "pbrl.human.worker", json.dumps(args)],
                                      stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._stopped = False
        self._gave_up = False
        return self

    def check(self) -> str | None:
        """Restart a dead worker; returns a message when it did (or, once, that it gave up), else None."""
        if self._stopped or self._gave_up or self._proc.poll() is None:
            return None
        code = self._proc.returncode
        if self.restarts >= self.max_restarts:
            self._gave_up = True
            return (f"the clip renderer died (exit code {code}) {self.restarts + 1} times; no more clips will be "
                    f"made (see {Path(self.clip_dir).parent / 'render.log'})")
        self.restarts += 1
        self._log.close()
        self.start()
        return f"the clip renderer died (exit code {code}); restarted ({self.restarts}/{self.max_restarts})"

    @property
    def gave_up(self) -> bool:
        """The worker died more than ``max_restarts`` times: no more clips will come."""
        return self._gave_up

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped = True
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def wait_rendered(store, timeout: float = 60.0, poll_s: float = 0.05) -> None:
    """Block until no query waits for clips (tests, the demo)."""
    deadline = time.time() + timeout
    while store.to_render(1):
        if time.time() > deadline:
            raise TimeoutError(f"clips not rendered within {timeout} s")
        time.sleep(poll_s)


def settings_from(cfg: dict[str, Any] | None) -> ClipSettings:
    return ClipSettings(**(cfg or {}))


if __name__ == "__main__":
    run_worker(**json.loads(sys.argv[1]))
