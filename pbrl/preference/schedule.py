"""PEBBLE's feedback schedule and the phases of a run.

A run goes through four phases (Lee et al. 2021; B-Pref's ``num_seed_steps``, ``num_unsup_steps``
and ``num_interact``):

- ``SEED``: uniformly random actions, no updates, for ``seed_steps``;
- ``PRETRAIN``: the agent learns from the k-NN state-entropy bonus for ``pretrain.steps``, and on
  after that until the reward model has been trained (a person answering asynchronously may take
  a while after the first round is asked);
- ``WAITING``: the first round is due but no stored episode holds a whole segment yet (a random
  Walker2d falls within ~20-40 steps): random actions, no updates, so nothing trains on an
  untrained reward;
- ``LEARNING``: the agent learns from the learned reward (or the env's, without a teacher).

Rounds come right after pretraining, then every ``feedback.num_interact`` steps while the budget
lasts. Steps advance by the number of envs, so "every n steps" means "whenever a multiple of n is
crossed".
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    SEED = "seed"
    PRETRAIN = "pretrain"
    WAITING = "waiting"
    LEARNING = "learning"

    @property
    def acts_randomly(self) -> bool:
        return self in (Phase.SEED, Phase.WAITING)

    @property
    def learns(self) -> bool:
        return self in (Phase.PRETRAIN, Phase.LEARNING)


def crossed(prev: int, step: int, every: int, offset: int = 0) -> bool:
    """Whether a step ``offset + j * every`` (j >= 1) lies in ``(prev, step]``; never when ``every`` is 0."""
    if not every or step <= offset:
        return False
    return (step - offset) // every > max(prev - offset, 0) // every


class FeedbackSchedule:
    """When rounds come: ``first`` (after seed and pretraining steps), then every ``every`` steps."""

    def __init__(self, seed_steps: int, pretrain_steps: int, every: int, preference: bool = True):
        self.seed_steps, self.every, self.preference = seed_steps, every, preference
        self.first = seed_steps + pretrain_steps  # pretraining ends and the first round happens at this step

    def phase(self, step: int, rounds: int = 0, trained: bool = False) -> Phase:
        """The phase at ``step`` given the rounds asked so far and whether the reward model has been trained."""
        if step < self.seed_steps:
            return Phase.SEED
        if not self.preference:
            return Phase.LEARNING
        if rounds == 0 and step >= self.first:
            return Phase.WAITING
        if step < self.first or not trained:
            return Phase.PRETRAIN
        return Phase.LEARNING

    def due(self, prev: int, step: int) -> bool:
        """A scheduled round falls in ``(prev, step]``: at ``first``, then every ``every`` steps."""
        return step >= self.first and (prev < self.first or crossed(prev, step, self.every, self.first))

    def rounds_in(self, prev: int, step: int) -> int:
        """How many scheduled rounds fall in ``(prev, step]``."""
        def upto(s: int) -> int:
            return 0 if s < self.first else 1 + ((s - self.first) // self.every if self.every else 0)
        return upto(step) - upto(prev)

    def next_round(self, step: int) -> int:
        """The step of the next scheduled round after ``step``."""
        if step < self.first:
            return self.first
        return self.first + ((step - self.first) // self.every + 1) * self.every
