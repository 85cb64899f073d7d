"""Query selection: which candidate queries to show the teacher, one registered rule per name.

A rule is a function ``rule(pool, count, ctx) -> indices`` that picks ``count`` distinct queries
from a candidate ``pool``. Register a new one with ``@register("name")`` in its own module and
import that module below; no other rule changes. ``pool_factor`` says how large a candidate pool
the rule wants (PEBBLE's ``large_batch``: ``count × large_batch`` candidates, or ``count``).
"""

from pbrl.buffers.episodes import QueryPool  # noqa: F401
from pbrl.query.base import RULES, SelectionContext, register, select  # noqa: F401
from pbrl.query import kcenter, uncertainty, uniform  # noqa: F401,E402  (registers the rules)
