"""Names and defaults shared by the master and the replica side."""

from __future__ import annotations

from enum import StrEnum

ALL_BASIC_FIELDS = "__all__"
#: How a broadcast queue is written on the diff pipeline's first line.
NO_QUEUE = "None"

DEFAULT_MASTER_MESSAGE_TTL = 86400
DEFAULT_REPLICA_MAX_RETRIES = 30
DEFAULT_REPLICA_RETRY_DELAY = 2
DEFAULT_REPLICA_DELAY_QUEUE_MAX_SIZE = 1000
DEFAULT_DEAD_MESSAGE_TTL = 864000

#: The revision and timestamp fields every master and replica model carries.
FIELDS_TRACKER_FIELD_NAME = "__fields_tracker"
TRACKED_FIELDS_ATTR_NAME = "__tracked_fields"


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
