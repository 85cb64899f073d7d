"""The Teacher interface: anything that labels queries of K trajectory segments.

The preference loop talks to every teacher the same way: ``ask`` puts a round's queries to it,
``collect`` returns the labels that have arrived since the last call. A scripted teacher answers
inside ``ask`` (it implements ``answer``); a person at the viewer answers later, and may answer
queries of earlier rounds, so ``collect`` returns each label with its own query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from pbrl.buffers.episodes import QueryPool

OUTCOMES = ("first", "second", "equal", "skip")  # label counters; rankings (K > 2) count by their best segment


@dataclass
class Answers:
    """The teacher's answers to N queries of K segments.

    ``ranking``: ``[N, K]`` segment positions best first (ignored where ``equal`` or ``skipped``);
    ``equal``: ``[N]`` all K judged equally good; ``skipped``: ``[N]`` no label (the query still
    counts against the feedback budget).
    """

    ranking: np.ndarray
    equal: np.ndarray
    skipped: np.ndarray

    def counts(self) -> dict[str, int]:
        """How many answers fell into each outcome: first/second (best segment; "second" = any but the first), equal, skip."""
        labelled = ~self.skipped & ~self.equal
        first = int((labelled & (self.ranking[:, 0] == 0)).sum())
        return {"first": first, "second": int(labelled.sum()) - first, "equal": int((~self.skipped & self.equal).sum()),
                "skip": int(self.skipped.sum())}


@dataclass
class RoundInfo:
    """Where a round's queries come from, for teachers that record it (the human teacher's store)."""

    round: int
    env_step: int | None = None
    selection: str | None = None
    scores: np.ndarray | None = None  # [N] the ensemble's disagreement on each query (None before training)


class Teacher(ABC):
    """Labels queries: ``answer`` for teachers that answer at once; ``ask``/``collect`` for all."""

    asynchronous: bool = False  # True: the loop keeps training while labels are outstanding

    @abstractmethod
    def answer(self, queries: QueryPool) -> Answers:
        """Rank (or mark equal, or skip) each query in ``queries`` now."""

    def ask(self, queries: QueryPool, info: RoundInfo) -> None:
        """Put ``queries`` to the teacher. The default answers them at once; ``collect`` hands the answers back."""
        self.__dict__.setdefault("_answered", []).append((queries, self.answer(queries)))

    def collect(self, wait: bool = True) -> list[tuple[QueryPool, Answers]]:
        """Labels that arrived since the last call, each batch with its queries.

        ``wait=True`` (synchronous teachers) returns only once every query asked so far is answered.
        """
        answered = self.__dict__.pop("_answered", [])
        return answered

    def pending(self) -> int:
        """Queries asked and not answered yet."""
        return 0

    def undelivered(self) -> int:
        """Answers given and not yet handed over by ``collect`` (a person's, between rounds or across a restart)."""
        return 0

    def already_asked(self) -> int:
        """Queries this teacher holds from before a restart (they count against the budget)."""
        return 0

    def tick(self, step: int, total_steps: int, next_round: int | None = None) -> None:
        """The trainer's progress and the step of its next round (None: no more), for teachers that show it.

        Called every few hundred steps and after each round.
        """

    def finish(self) -> str | None:
        """Training ended normally; returns a line on what became of the labels, for teachers that track them."""
        return None

    def close(self) -> None:
        """Release what the teacher holds (servers, workers)."""

    def state_dict(self) -> dict:
        """Teacher state for snapshots (RNGs, thresholds)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved."""


# name -> factory(cfg, ledger, rng, run) -> Teacher; ``teacher.name`` picks one. A module registers its
# teacher with ``@register("name")``: scripted.py and backflip.py (imported by pbrl/teachers/__init__.py)
# and pbrl/human/teacher.py (imported by the preference package). ``run`` says where and what is labelled:
# ``run_dir``, ``env_id``, ``env_kwargs``, ``k``, ``budget``, ``seed``, ``instruction``, ``log``, ``session``.
TeacherFactory = Callable[[Mapping[str, Any], Any, np.random.Generator, Mapping[str, Any]], Teacher]
TEACHERS: dict[str, TeacherFactory] = {}


def register(name: str) -> Callable[[TeacherFactory], TeacherFactory]:
    """Decorator: make ``factory`` buildable as ``teacher.name=<name>``."""
    def wrap(factory: TeacherFactory) -> TeacherFactory:
        if name in TEACHERS:
            raise ValueError(f"teacher {name!r} is registered twice")
        TEACHERS[name] = factory
        return factory
    return wrap
