"""Dataset columns as TRL passes them: one value per completion (or a single value for the whole batch)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def per_sample(column: Any, n: int, name: str) -> list[Any] | None:
    """`column` as a list of `n` values; a scalar is repeated. None (logged) when the lengths cannot match."""
    if isinstance(column, (str, bytes, int, float)) or column is None:
        return [column] * n
    try:
        values = list(column)
    except TypeError:
        return [column] * n
    if len(values) == n:
        return values
    if len(values) == 1:
        return values * n
    logger.error("reward column %r has %d values for %d completions; scoring them None", name, len(values), n)
    return None
