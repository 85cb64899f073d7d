"""Tiny named schedule predicates, so the run loop reads as what happens when."""

from __future__ import annotations


class Every:
    """True every ``n`` steps (never when ``n`` is 0 or None): ``Every(1000)(step)``."""

    def __init__(self, n: int | None, offset: int = 0):
        self.n, self.offset = n, offset

    def __call__(self, step: int) -> bool:
        return bool(self.n) and step > self.offset and (step - self.offset) % self.n == 0


class Until:
    """True while ``step < n``: ``Until(seed_steps)(step)`` means "still seeding"."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, step: int) -> bool:
        return step < self.n
