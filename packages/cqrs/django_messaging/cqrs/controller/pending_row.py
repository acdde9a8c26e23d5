"""The columns of a new ``PendingMessage`` row, for the statements that write it by hand."""

from __future__ import annotations

from collections.abc import Callable

#: In the order the statements give their values: six parameters, ``attempts`` and
#: ``last_error`` of a new row, then the trace context parameter (see :data:`NEW_ROW`).
COLUMNS = (
    "created",
    "cqrs_id",
    "signal_type",
    "instance_pk",
    "queue",
    "body",
    "attempts",
    "last_error",
    "trace_context",
)
#: The values of one new row: its six parameters, no attempt yet, no error, its trace context.
NEW_ROW = "(%s, %s, %s, %s, %s, %s, 0, '', %s)"


def column_list(quote: Callable[[str], str]) -> str:
    """``COLUMNS`` quoted by ``quote`` (a connection's ``ops.quote_name``), comma-separated."""
    return ", ".join(quote(c) for c in COLUMNS)
