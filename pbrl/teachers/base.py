"""The Teacher interface: anything that labels queries of K trajectory segments.

A scripted oracle and a person at the viewer both implement ``answer``; the preference loop
cannot tell them apart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from pbrl.query.base import QueryPool

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


class Teacher(ABC):
    """Labels queries. ``answer`` may block (a person in synchronous mode) but must answer every query."""

    @abstractmethod
    def answer(self, queries: QueryPool) -> Answers:
        """Rank (or mark equal, or skip) each query in ``queries``."""

    def state_dict(self) -> dict:
        """Teacher state for snapshots (RNGs, thresholds)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict saved."""
