"""The human teacher: queries go into the run's label store, a person answers them in the viewer.

``teacher=human`` in any experiment. Each round's queries are written to ``<run>/human/labels.sqlite``
with their segments' simulator states; the teacher knows only that label store. The run starts what
the person needs beside it (``pbrl/human/session.py``): a render worker (its own process) that writes
the clips, and the viewer (by default served from the training process; its URL is printed).

- ``mode: sync`` (PEBBLE): the round waits until every query asked so far has a label, and a few
  seconds more so that the last answer can still be undone.
- ``mode: async`` (rl-teacher): the round asks and returns at once; labels are folded in at the
  next rounds as they arrive, and the agent keeps exploring on the state-entropy bonus until the
  first ones do.

The store is the record: the teacher hands the learner each label once, keeping a watermark (the
highest label id handed over) in the run's snapshot. A restarted run therefore gets again the
labels given after its snapshot, and the queries still waiting stay in the queue: stopping and
restarting the trainer or the viewer loses no label and asks no labelled query again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from pbrl.buffers.episodes import QueryPool
from pbrl.errors import ConfigError, check_choice
from pbrl.human.instructions import default_instruction
from pbrl.human.store import LabelStore, training_target
from pbrl.human.worker import ClipSettings
from pbrl.run_config import has_unhealthy_termination
from pbrl.teachers.base import Answers, RoundInfo, Teacher, register

MODES = ("sync", "async")
FIELDS = {"name", "mode", "instruction", "serve", "host", "port", "repeat_fraction", "repeat_gap", "undo_grace_s",
          "min_clip_s", "clip"}


def validate(cfg: Mapping[str, Any]) -> None:
    """Check ``teacher.*`` for the human teacher, naming the field and what is allowed."""
    unknown = sorted(set(cfg) - FIELDS)
    if unknown:
        raise ConfigError(f"teacher.{unknown[0]}", f"not a human-teacher setting; allowed: {', '.join(sorted(FIELDS))}")
    check_choice("teacher.mode", cfg.get("mode", "sync"), MODES)
    if not isinstance(cfg.get("instruction") or "", str):
        raise ConfigError("teacher.instruction", f"got {cfg['instruction']!r}; must be text")
    if not isinstance(cfg.get("serve", True), bool):
        raise ConfigError("teacher.serve", f"got {cfg['serve']!r}; allowed: true, false")
    port = cfg.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError("teacher.port", f"got {port!r}; allowed: 0 (any free port) to 65535")
    gap = cfg.get("repeat_gap", 10)
    if isinstance(gap, bool) or not isinstance(gap, int) or not 0 <= gap <= 1000:
        raise ConfigError("teacher.repeat_gap", f"got {gap!r}; allowed: an integer from 0 to 1000")
    for key, low, high in (("repeat_fraction", 0.0, 0.5), ("undo_grace_s", 0.0, 60.0), ("min_clip_s", 0.0, 10.0)):
        value = cfg.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(f"teacher.{key}", f"got {value!r}; allowed: a number in [{low}, {high}]")
    clip = dict(cfg.get("clip") or {})
    allowed = set(ClipSettings.__dataclass_fields__)
    unknown = sorted(set(clip) - allowed)
    if unknown:
        raise ConfigError(f"teacher.clip.{unknown[0]}", f"not a clip setting; allowed: {', '.join(sorted(allowed))}")
    check_choice("teacher.clip.format", clip.get("format", "mp4"), ("mp4", "webm", "gif"))
    for key in ("width", "height"):
        value = clip.get(key, 640)
        if isinstance(value, bool) or not isinstance(value, int) or not 32 <= value <= 1920:
            raise ConfigError(f"teacher.clip.{key}", f"got {value!r}; allowed: an integer from 32 to 1920")
    for key in ("fps", "hold_s"):
        value = clip.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "fps" and value == 0):
            raise ConfigError(f"teacher.clip.{key}", f"got {value!r}; must be a number > 0" if key == "fps"
                              else f"got {value!r}; must be a number >= 0")


def segment_a_person_can_judge(cfg: Mapping[str, Any], spec, say: Callable[[str], None]) -> Mapping[str, Any]:
    """The config with ``feedback.segment`` long enough for a clip of ``teacher.min_clip_s`` seconds.

    A 50-step Hopper segment lasts 0.4 s: too short for a person to judge (Christiano et al.
    showed 1-2 s clips). The clip plays in real time at the env's ``render_fps``. Not where
    training episodes end when the body falls (``env.terminate=true`` on Hopper, Walker2d, Ant,
    Humanoid): early episodes last a fraction of a second, no 1 s segment would fit, and the
    first round would wait for one forever; the run says so instead.
    """
    min_s = float(cfg["teacher"].get("min_clip_s", 1.0))
    fps = spec.render_fps
    segment = int(cfg["feedback"]["segment"])
    if not fps or not min_s or segment / fps >= min_s:
        return cfg
    longer = min(math.ceil(min_s * fps), spec.max_episode_steps)
    if cfg["env"].get("terminate", True) and has_unhealthy_termination(cfg["env"]):
        say(f"teacher=human: clips show {segment / fps:.2f} s of {cfg['env']['id']} (feedback.segment="
            f"{segment}): its training episodes end when the body falls, often sooner than "
            f"{min_s:g} s; with env.terminate=false (as Christiano et al. trained) the segment "
            f"would be raised to {longer} steps (teacher.min_clip_s)")
        return cfg
    say(f"teacher=human: feedback.segment {segment} -> {longer} steps, so that each clip shows "
        f"{longer / fps:.2f} s of {cfg['env']['id']} (teacher.min_clip_s={min_s:g}; set it to 0 to keep {segment})")
    return {**cfg, "feedback": {**cfg["feedback"], "segment": longer}}


class HumanTeacher(Teacher):
    """A person labelling in the viewer; see the module docstring."""

    records_scores = True  # the learner passes each query's ensemble disagreement to the store

    def __init__(self, cfg: Mapping[str, Any], store: LabelStore, env_id: str, k: int, budget: int,
                 log: Callable[[str], None] | None = None, session=None):
        """``session`` (optional): what the run started beside the store; ``check()`` says whether clips are
        still being rendered, ``where`` where the person labels (pbrl/human/session.py)."""
        validate(cfg)
        self.asynchronous = cfg.get("mode", "sync") == "async"
        self.log = log or (lambda msg: print(f"pbrl: {msg}", flush=True))
        self.grace_s = float(cfg.get("undo_grace_s", 3.0))
        self.store, self.session = store, session
        self.where = getattr(session, "where", None) or f"pbrl-label {store.path.parent.parent}"
        for key, value in (("instruction", instruction_for(cfg, env_id)), ("k", k), ("budget", budget),
                           ("env_id", env_id), ("mode", cfg.get("mode", "sync"))):
            self.store.set_meta(key, value)
        for key in ("waiting_since", "next_round_step"):
            self.store.set_meta(key, None)
        self.store.set_meta("done", False)  # a run resumed or extended takes labels again
        self.delivered = 0  # highest label id handed to the learner
        self.failed_seen: set[int] = set()  # queries whose clips failed, counted as skipped once
        self._last_beat = 0.0

    # ----- Teacher -----------------------------------------------------------------------------

    def answer(self, queries: QueryPool) -> Answers:
        """Ask and wait for these queries' labels, rows in the order of ``queries``.

        For direct use (scripts, tests); the learner uses ``ask`` and ``collect``, and the two are not
        to be mixed: the labels of other outstanding queries would be handed over here and dropped.
        """
        ids = self._push(queries, RoundInfo(round=-1))
        self._wait(lambda: self.pending() == 0)
        row_of = {qid: (ans, i) for _, ans, qids in self._collect_rows() for i, qid in enumerate(qids)}
        ranking = np.tile(np.arange(queries.obs.shape[1]), (len(ids), 1))
        equal, skipped = np.zeros(len(ids), bool), np.ones(len(ids), bool)
        for i, qid in enumerate(ids):
            if qid in row_of:
                ans, j = row_of[qid]
                ranking[i], equal[i], skipped[i] = ans.ranking[j], ans.equal[j], ans.skipped[j]
        return Answers(ranking, equal, skipped)

    def ask(self, queries: QueryPool, info: RoundInfo) -> None:
        self._push(queries, info)

    def collect(self, wait: bool = True) -> list[tuple[QueryPool, Answers]]:
        if wait:
            self._wait(lambda: self.pending() == 0)
        return [(pool, ans) for pool, ans, _ in self._collect_rows()]

    def pending(self) -> int:
        counts = self.store.counts()
        return counts["rendering"] + counts["ready"]

    def undelivered(self) -> int:
        return len(self._undelivered_labels())

    def _undelivered_labels(self) -> list[dict[str, Any]]:
        """Standing training labels given after the last one handed to the learner."""
        return [lab for lab in self.store.training_labels().values() if lab["id"] > self.delivered]

    def already_asked(self) -> int:
        return self.store.counts()["queries"]

    def tick(self, step: int, total_steps: int, next_round: int | None = None) -> None:
        self.store.set_meta("trainer_step", step)
        self.store.set_meta("total_steps", total_steps)
        self.store.set_meta("next_round_step", next_round)
        self._heartbeat(force=True)
        self._check_worker()

    def finish(self) -> str:
        """Training ended normally: the viewer says so and serves no more; returns what became of the labels."""
        undelivered = self._undelivered_labels()
        counts = self.store.counts()
        unlabelled = counts["ready"] + counts["rendering"]
        self.store.set_meta("unused_labels", len(undelivered))
        self.store.set_meta("unlabelled_at_end", unlabelled)
        self.store.set_meta("waiting_since", None)
        self.store.set_meta("done", True)
        note = f"{self.delivered_count} labels from the person"
        if undelivered:  # given between the final reward update and this call: a moment's window
            n = len(undelivered)
            note += f"; {n} arrived after the last reward update and {'was' if n == 1 else 'were'} not used"
        if unlabelled:
            note += f"; {unlabelled} {'query was' if unlabelled == 1 else 'queries were'} left unlabelled"
        return note

    @property
    def delivered_count(self) -> int:
        """Labels handed to the learner so far ("can't tell" included: asked, not trained on)."""
        return sum(1 for lab in self.store.training_labels().values() if lab["id"] <= self.delivered
                   and lab["consumed"] is not None)

    def close(self) -> None:
        self.store.set_meta("waiting_since", None)
        self.store.set_meta("trainer_heartbeat", 0)  # the viewer says at once that no trainer is running
        self.store.close()

    def state_dict(self) -> dict:
        return {"delivered": self.delivered, "failed_seen": sorted(self.failed_seen)}

    def load_state_dict(self, state: dict) -> None:
        self.delivered = int(state.get("delivered", 0))
        self.failed_seen = set(state.get("failed_seen", []))

    # ----- internals -----------------------------------------------------------------------------

    def _push(self, queries: QueryPool, info: RoundInfo) -> list[int]:
        if queries.sim_state is None or queries.sim_state.shape[-1] == 0:
            raise ConfigError("teacher.name", "the human teacher needs the simulator state of every stored step "
                                              "to render clips, and this environment exposes none")
        return self.store.add_queries(queries.obs.numpy(), queries.action.numpy(), queries.sim_state,
                                      queries.index, info.round, info.env_step, info.selection, info.scores)

    def _check_worker(self) -> None:
        if self.session is not None:
            self.session.check()  # raises when no more clips can be rendered: stop rather than wait forever

    def _heartbeat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_beat > 5:
            self.store.set_meta("trainer_heartbeat", now)
            self._last_beat = now

    def _wait(self, done: Callable[[], bool], poll_s: float = 0.25) -> None:
        """Block until ``done()`` and the last label is ``undo_grace_s`` old; the viewer shows the wait."""
        since, last_note = None, 0.0
        while True:
            if done():
                newest = self.store.db.execute("SELECT MAX(created) FROM labels").fetchone()[0] or 0.0
                if time.time() - newest >= self.grace_s:
                    break
            elif since is None:
                since = time.time()
                self.store.set_meta("waiting_since", since)
            if since is not None and time.time() - last_note > 60:
                self.log(f"waiting for {self.pending()} labels at {self.where}")
                last_note = time.time()
            self._heartbeat()
            self._check_worker()
            time.sleep(poll_s)
        if since is not None:
            self.store.set_meta("waiting_since", None)

    def _collect_rows(self) -> list[tuple[QueryPool, Answers, list[int]]]:
        """Labels (and failed queries) not handed over yet, as one QueryPool + Answers; marks them consumed."""
        labels = self._undelivered_labels()
        if labels:  # take them first: one undone in the meantime is dropped here, and comes back relabelled
            taken = self.store.mark_consumed([lab["id"] for lab in labels])
            labels = [lab for lab in labels if lab["id"] in taken]
        failed = [int(r["id"]) for r in self.store.db.execute("SELECT id FROM queries WHERE status = 'failed'")
                  if int(r["id"]) not in self.failed_seen]
        if not labels and not failed:
            return []
        qids, obs, action, index, ranking, equal, skipped = [], [], [], [], [], [], []
        for lab in labels:
            seg = self.store.segments(lab["query_id"])
            target = training_target(lab["answer"], lab["shown_order"], lab["ranking"])
            k = seg["obs"].shape[0]
            qids.append(lab["query_id"])
            obs.append(seg["obs"]), action.append(seg["action"]), index.append(seg["index"])
            ranking.append(target.ranking if target else list(range(k)))
            equal.append(bool(target and target.equal))
            skipped.append(target is None)  # can't tell: asked, not trained on
        for qid in failed:
            seg = self.store.segments(qid)
            qids.append(qid)
            obs.append(seg["obs"]), action.append(seg["action"]), index.append(seg["index"])
            ranking.append(list(range(seg["obs"].shape[0]))), equal.append(False), skipped.append(True)
            self.log(f"query {qid} could not be rendered and is skipped")
        if labels:
            self.delivered = max(self.delivered, max(lab["id"] for lab in labels))
        self.failed_seen.update(failed)
        pool = QueryPool(np.stack(index), torch.from_numpy(np.stack(obs)), torch.from_numpy(np.stack(action)))
        answers = Answers(np.asarray(ranking, np.int64), np.asarray(equal), np.asarray(skipped))
        return [(pool, answers, qids)]


def instruction_for(cfg: Mapping[str, Any], env_id: str, experiment: str | None = None) -> str:
    """The question above the clips: ``teacher.instruction``, else the experiment's, else the task's own."""
    return cfg.get("instruction") or experiment or default_instruction(env_id)


@register("human")
def make_human(cfg: Mapping[str, Any], ledger, rng: np.random.Generator, run: Mapping[str, Any]) -> HumanTeacher:
    """``teacher=human``: the run's label store; the run passes the session it started (``run["session"]``)."""
    if run.get("run_dir") is None:
        raise ConfigError("teacher.name", "the human teacher needs a run directory for its label store")
    cfg = {**cfg, "instruction": instruction_for(cfg, run["env_id"], run.get("instruction"))}
    return HumanTeacher(cfg, LabelStore.for_run(Path(run["run_dir"])), run["env_id"], run["k"], run["budget"],
                        log=run.get("log"), session=run.get("session"))
