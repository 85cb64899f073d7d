"""Teachers, built by name from the ``teacher`` config group (``name: none`` trains on the env reward).

Each teacher module registers a factory (``pbrl.teachers.base.register``); this package imports the
scripted ones. The human teacher registers itself in ``pbrl/human/teacher.py``, which the preference
package imports: the teachers package knows nothing of the viewer.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pbrl.errors import ConfigError
from pbrl.teachers import backflip, scripted  # noqa: F401  (register the scripted teachers)
from pbrl.teachers.base import TEACHERS, Answers, Teacher, register  # noqa: F401
from pbrl.teachers.ledger import RewardLedger
from pbrl.teachers.scripted import ScriptedTeacher  # noqa: F401


def make_teacher(cfg: Mapping[str, Any], ledger: RewardLedger, rng: np.random.Generator,
                 run: Mapping[str, Any] | None = None) -> Teacher:
    """The teacher the ``teacher`` config group names (not ``none``), checked field by field by its factory."""
    name = cfg.get("name")
    if name not in TEACHERS:
        raise ConfigError("teacher.name", f"got {name!r}; allowed: {', '.join(['none', *sorted(TEACHERS)])}")
    return TEACHERS[name](cfg, ledger, rng, run or {})
