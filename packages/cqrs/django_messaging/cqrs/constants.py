"""Names shared by the master and the replica side."""

from __future__ import annotations

from enum import StrEnum

ALL_BASIC_FIELDS = "__all__"
#: How a broadcast queue is written on the diff pipeline's first line.
NO_QUEUE = "None"


class SignalType(StrEnum):
    """What happened to the master instance a message is about."""

    #: The master model has been saved.
    SAVE = "SAVE"
    #: The master model has been deleted.
    DELETE = "DELETE"
    #: The master model is re-sent on request (``cqrs_sync``, admin, diff tools).
    SYNC = "SYNC"

    def __str__(self) -> str:
        return self.value
