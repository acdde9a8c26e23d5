"""Helpers for ``transform_<field>`` methods of model consumers."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

EPOCH = dt.date(1970, 1, 1)


def days_from_epoch_to_date(days: int | Literal[""] | None, default: Any = None) -> dt.date | Any:
    """Debezium's ``io.debezium.time.Date`` (days since 1970-01-01) as a ``date``; ``default``
    when the value is empty (``None`` or ``""``)."""
    if days is None or days == "":
        return default
    return EPOCH + dt.timedelta(days=days)
