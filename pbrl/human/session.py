"""What a run starts beside the human teacher: the clip renderer and the viewer.

The human teacher (pbrl/human/teacher.py) only writes queries to the run's label store and reads
labels from it. For a person to answer, the run also needs a render worker (its own process,
turning each query's stored simulator states into clips) and, with ``teacher.serve: true``, the
web viewer served from the training process (else the person runs ``pbrl-label <run_dir>``).
``LabelingSession`` starts both and stops them with the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from pbrl.human.server import ViewerConfig, ViewerServer, make_app
from pbrl.human.store import LabelStore
from pbrl.human.teacher import instruction_for, validate
from pbrl.human.worker import ClipSettings, RenderWorker
from pbrl.lifecycle import write_text


class LabelingSession:
    """The render worker and (``teacher.serve``) the viewer of one run's label store."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: str | Path, env_id: str, env_kwargs: Mapping | None,
                 seed: int = 0, instruction: str | None = None, log: Callable[[str], None] | None = None):
        validate(cfg)
        log = log or (lambda msg: print(f"pbrl: {msg}", flush=True))
        store = LabelStore.for_run(run_dir)  # created here if new: the worker and the viewer open it by path
        store_path = store.path
        store.close()
        clip_dir = store_path.parent / "clips"
        self.worker = RenderWorker(store_path, clip_dir, env_id, dict(env_kwargs or {}),
                                   ClipSettings(**dict(cfg.get("clip") or {}))).start()
        self.server: ViewerServer | None = None
        self.log = log
        if cfg.get("serve", True):
            app = make_app(ViewerConfig(store_path, clip_dir, instruction=instruction_for(cfg, env_id, instruction),
                                        repeat_fraction=float(cfg.get("repeat_fraction", 0.0)),
                                        repeat_gap=int(cfg.get("repeat_gap", 10)), seed=seed))
            self.server = ViewerServer(app, cfg.get("host", "127.0.0.1"), int(cfg.get("port", 0)))
            # atomic: a script that waits for the file reads the whole address, never half of it
            write_text(store_path.parent / "viewer_url.txt", self.server.url + "\n")
            self.where = self.server.url
            log(f"label at {self.server.url}")
        else:
            self.where = f"pbrl-label {run_dir}"
            log(f"run `pbrl-label {run_dir}` to label")

    def check(self) -> None:
        """Say what happened to the render worker; raise once it gave up (no more clips can be shown)."""
        message = self.worker.check()
        if message and self.worker.gave_up:
            raise RuntimeError(message)
        if message:
            self.log(message)

    def close(self) -> None:
        self.worker.stop()
        if self.server is not None:
            self.server.close()
