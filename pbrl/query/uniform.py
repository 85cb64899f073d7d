"""Uniform selection: random queries (PEBBLE's first round always uses it)."""

from __future__ import annotations

import numpy as np

from pbrl.query.base import QueryPool, SelectionContext, register


@register("uniform", uses_pool=False)
def uniform(pool: QueryPool, count: int, ctx: SelectionContext) -> np.ndarray:
    """``count`` distinct random queries of the pool."""
    return ctx.rng.choice(len(pool), size=count, replace=False)
