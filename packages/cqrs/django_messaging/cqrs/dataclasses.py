"""The message that travels from a master to its replicas.

On the wire it is a JSON object with exactly the nine keys django-cqrs uses (``signal_type``,
``cqrs_id``, ``instance_data``, ``previous_data``, ``instance_pk``, ``correlation_id``,
``retries``, ``expires``, ``meta``), so a django-cqrs service and this package read each other's
messages. The target queue of a direct sync is not in the body: it is the routing key
(``cqrs.<queue>.<CQRS_ID>``), and the consumer recovers it from there.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.utils import timezone

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.exceptions import PayloadError
from django_messaging.cqrs.utils import get_message_expiration_dt

WIRE_KEYS = (
    "signal_type",
    "cqrs_id",
    "instance_data",
    "previous_data",
    "instance_pk",
    "correlation_id",
    "retries",
    "expires",
    "meta",
)
REQUIRED_KEYS = ("signal_type", "cqrs_id", "instance_data", "instance_pk")


def _wire_scalar(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | uuid.UUID):
        return str(value)
    return value


def format_expires(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat()


def parse_expires(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        if not isinstance(value, str):
            raise PayloadError(f"'expires' must be a string, got {_kind(value)}")
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError("'expires' is not an ISO 8601 datetime") from None
    if timezone.is_naive(parsed):
        # Written by a master without time zone support (django-cqrs with USE_TZ = False): its
        # time in TIME_ZONE, the zone it shares with this service.
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for error messages that must not quote the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_scalar_id(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def validate_message(dct: Any) -> None:
    """Check every wire key of a decoded message by type; raise PayloadError naming the key.

    The errors name keys and JSON types, never values: they end up in dead-letter headers.
    """
    if not isinstance(dct, dict):
        raise PayloadError(f"a CQRS message must be a JSON object, got {_kind(dct)}")
    missing = [key for key in REQUIRED_KEYS if key not in dct]
    if missing:
        raise PayloadError(f"CQRS message lacks required key(s) {', '.join(missing)}")
    signal_type = dct["signal_type"]
    if not isinstance(signal_type, str):
        raise PayloadError(f"'signal_type' must be a string, got {_kind(signal_type)}")
    if signal_type not in SignalType.__members__.values():
        raise PayloadError("'signal_type' is none of SAVE, DELETE, SYNC")
    cqrs_id = dct["cqrs_id"]
    if not isinstance(cqrs_id, str) or not cqrs_id:
        raise PayloadError(f"'cqrs_id' must be a non-empty string, got {_kind(cqrs_id)}")
    if not isinstance(dct["instance_data"], dict):
        raise PayloadError(f"'instance_data' must be an object, got {_kind(dct['instance_data'])}")
    if not _is_scalar_id(dct["instance_pk"]):
        raise PayloadError(
            f"'instance_pk' must be a string or a number, got {_kind(dct['instance_pk'])}"
        )
    for key in ("previous_data", "meta"):
        value = dct.get(key)
        if value is not None and not isinstance(value, dict):
            raise PayloadError(f"'{key}' must be an object or null, got {_kind(value)}")
    correlation_id = dct.get("correlation_id")
    if correlation_id is not None and not _is_scalar_id(correlation_id):
        raise PayloadError(
            f"'correlation_id' must be a string, a number or null, got {_kind(correlation_id)}"
        )
    retries = dct.get("retries")
    if retries is not None and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < 0
    ):
        raise PayloadError(f"'retries' must be a non-negative integer, got {_kind(retries)}")
    expires = dct.get("expires")
    if expires is not None and not isinstance(expires, str):
        raise PayloadError(f"'expires' must be a string or null, got {_kind(expires)}")


class TransportPayload:
    """One CQRS message: what happened (``signal_type``) to which instance of which model."""

    __slots__ = (
        "_body",
        "_correlation_id",
        "_cqrs_id",
        "_expires",
        "_instance_data",
        "_instance_pk",
        "_meta",
        "_previous_data",
        "_queue",
        "_retries",
        "_signal_type",
        "is_dead_letter",
        "is_requeue",
        "origin_db",
        "outbox_id",
        "trace",
    )

    def __init__(
        self,
        signal_type: SignalType | str,
        cqrs_id: str,
        instance_data: dict[str, Any],
        instance_pk: Any,
        queue: str | None = None,
        previous_data: dict[str, Any] | None = None,
        correlation_id: Any = None,
        expires: dt.datetime | None = None,
        retries: int = 0,
        meta: dict[str, Any] | None = None,
    ) -> None:
        try:
            self._signal_type = SignalType(signal_type)
        except ValueError:
            raise PayloadError("unknown signal_type") from None
        self._cqrs_id = cqrs_id
        self._instance_data = instance_data
        self._instance_pk = instance_pk
        self._queue = queue
        self._previous_data = previous_data
        self._correlation_id = correlation_id
        self._expires = expires
        self.retries = retries
        self._meta = meta
        self._body: bytes | None = None
        self.is_dead_letter = False
        self.is_requeue = False
        #: The database alias the change was written to (where it is stored if unpublished).
        self.origin_db: str | None = None
        #: Its row in ``messaging_cqrs_pendingmessage`` when it was stored before the commit.
        self.outbox_id: int | None = None
        #: The W3C trace context of the save that made it (message headers, never the body).
        self.trace: dict[str, str] | None = None

    @classmethod
    def from_message(cls, dct: dict[str, Any], queue: str | None = None) -> TransportPayload:
        """Build a payload from a decoded message body; any key of the wrong type (or a missing
        required one) is a PayloadError."""
        validate_message(dct)
        retries = dct.get("retries") or 0
        return cls(
            signal_type=dct["signal_type"],
            cqrs_id=dct["cqrs_id"],
            instance_data=dct["instance_data"],
            instance_pk=dct["instance_pk"],
            queue=queue,
            previous_data=dct.get("previous_data"),
            correlation_id=dct.get("correlation_id"),
            # No key at all (older masters, other producers): the default TTL, as django-cqrs
            # gives it; an explicit null never expires.
            expires=(
                parse_expires(dct["expires"]) if "expires" in dct else get_message_expiration_dt()
            ),
            retries=retries,
            meta=dct.get("meta"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The nine wire keys, JSON-ready."""
        return {
            "signal_type": self._signal_type.value,
            "cqrs_id": self._cqrs_id,
            "instance_data": self._instance_data,
            "previous_data": self._previous_data,
            "instance_pk": _wire_scalar(self._instance_pk),
            "correlation_id": _wire_scalar(self._correlation_id),
            "retries": self._retries,
            "expires": format_expires(self._expires),
            "meta": self._meta,
        }

    def body(self) -> bytes:
        """The message as JSON, encoded once: the stored row and the broker get the same bytes."""
        if self._body is None:
            self._body = get_serializer("json").dumps(self.to_dict())
        return self._body

    def is_expired(self) -> bool:
        """``expires`` is an instant (a naive one is read in ``TIME_ZONE``), also without
        ``USE_TZ``."""
        expires = self._expires
        if expires is None:
            return False
        if timezone.is_naive(expires):
            expires = timezone.make_aware(expires, timezone.get_default_timezone())
        return expires <= dt.datetime.now(dt.UTC)

    @property
    def signal_type(self) -> SignalType:
        return self._signal_type

    @property
    def cqrs_id(self) -> str:
        return self._cqrs_id

    @property
    def instance_data(self) -> dict[str, Any]:
        return self._instance_data

    @property
    def pk(self) -> Any:
        return self._instance_pk

    @property
    def queue(self) -> str | None:
        return self._queue

    @property
    def previous_data(self) -> dict[str, Any] | None:
        return self._previous_data

    @property
    def correlation_id(self) -> Any:
        return self._correlation_id

    @property
    def meta(self) -> dict[str, Any] | None:
        return self._meta

    @property
    def expires(self) -> dt.datetime | None:
        return self._expires

    @property
    def retries(self) -> int:
        return self._retries

    @retries.setter
    def retries(self, value: int) -> None:
        if value < 0:
            raise ValueError("retries must not be negative")
        self._retries = value
        self._body = None

    def __repr__(self) -> str:
        return (
            f"<TransportPayload {self._signal_type.value} {self._cqrs_id} pk={self._instance_pk!r} "
            f"retries={self._retries}>"
        )
