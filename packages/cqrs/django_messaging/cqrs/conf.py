"""The ``MESSAGING["CQRS"]`` settings section: every key, its default and its type.

The keys are django-cqrs's ``CQRS`` dict keys with the same meaning; a project that still has a
top-level ``CQRS`` setting keeps working (``legacy="CQRS"``) while it moves to ``MESSAGING``.
"""

from __future__ import annotations

from typing import Any

from django_messaging.core.settings import Section, Setting


def _positive_or_none(value: Any) -> str | None:
    if value is not None and value < 1:
        return "must be at least 1, or None for no limit"
    return None


def _not_negative(value: Any) -> str | None:
    if value is not None and value < 0:
        return "must not be negative"
    return None


def _url(value: Any) -> str | None:
    if value and value.split("://", 1)[0] not in {"amqp", "amqps", "pyamqp", "memory", "redis"}:
        return "must be an amqp:// or amqps:// URL (Kombu also accepts its own schemes)"
    return None


MASTER = {
    "CQRS_AUTO_UPDATE_FIELDS": Setting(
        False, bool, help="save(update_fields=...) also bumps the revision and publishes"
    ),
    "CQRS_MESSAGE_TTL": Setting(
        86400,
        (int, type(None)),
        validate=_positive_or_none,
        help="seconds a message stays valid (None: forever)",
    ),
    "correlation_function": Setting(
        None, None, imports=True, help="callable or dotted path: (signal_type, cqrs_id, pk, queue)"
    ),
    "meta_function": Setting(
        None, None, imports=True, help="callable or dotted path: meta for every payload"
    ),
    "CQRS_PUBLISH_CONFIRMS": Setting(
        "outbox",
        str,
        validate=lambda v: (
            None
            if v in ("outbox", "each", "pipelined")
            else "must be 'outbox', 'each' or 'pipelined'"
        ),
        help="store in the transaction and collect confirms later, wait for each, or pipelined",
    ),
    "CQRS_OUTBOX_GRACE": Setting(
        60,
        (int, float),
        validate=_not_negative,
        help="seconds before a stored, unconfirmed message is re-sent by another process",
    ),
    "CQRS_CONFIRM_WINDOW": Setting(
        1000,
        int,
        validate=_positive_or_none,
        help="unconfirmed messages allowed (outbox, pipelined)",
    ),
    "CQRS_PENDING_FLUSH_BATCH": Setting(
        500, int, validate=_positive_or_none, help="stored messages the relay claims at once"
    ),
    "RELAY_CLAIM_TIMEOUT": Setting(
        10.0,
        (int, float),
        validate=lambda v: None if v > 0 else "must be positive",
        help="seconds a relay's lease on stored messages lasts (renewed while it lives)",
    ),
    "CQRS_PREPARED_STATEMENTS": Setting(
        True,
        bool,
        help="outbox on PostgreSQL (psycopg 3): prepare the statement that writes a saved row "
        "and its message row",
    ),
}

REPLICA = {
    "CQRS_MAX_RETRIES": Setting(
        30, (int, type(None)), validate=_not_negative, help="None: retry forever"
    ),
    "CQRS_RETRY_DELAY": Setting(2, (int, float), validate=_not_negative, help="seconds"),
    "delay_queue_max_size": Setting(
        1000,
        (int, type(None)),
        validate=_positive_or_none,
        help="no effect (a check warns): delays are broker-side",
    ),
    # The spelling django-cqrs documents (its code reads only delay_queue_max_size).
    "CQRS_DELAY_QUEUE_MAX_SIZE": Setting(
        None,
        (int, type(None)),
        validate=_positive_or_none,
        help="no effect (a check warns): delays are broker-side",
    ),
    "dead_letter_queue": Setting(None, str, help="default: 'dead_letter_' + queue"),
    "dead_message_ttl": Setting(
        864000, (int, type(None)), validate=_positive_or_none, help="seconds; None: keep"
    ),
    "CQRS_QUERY_TIMEOUT": Setting(
        0, int, validate=_not_negative, help="ms, per message (PostgreSQL)"
    ),
    "CQRS_LOG_TIMED_OUT_QUERIES": Setting(False, bool),
    "CQRS_QUERY_LOGGER": Setting("django_messaging.cqrs.queries", str),
    "CQRS_BATCH_SIZE": Setting(
        200, int, validate=_positive_or_none, help="messages applied per database transaction"
    ),
    "CQRS_TOMBSTONE_TTL": Setting(
        7 * 86400, int, validate=_positive_or_none, help="seconds a delete is remembered"
    ),
}

settings = Section(
    "CQRS",
    "django_messaging.cqrs",
    {
        "transport": Setting(
            "django_messaging.cqrs.transport.RabbitMQTransport",
            (str, type),
            imports=True,
            help="dotted path of a BaseTransport subclass",
        ),
        "url": Setting(None, str, secret=True, validate=_url),
        "host": Setting(None, str),
        "port": Setting(None, int),
        "user": Setting(None, str),
        "password": Setting(None, str, secret=True),
        "exchange": Setting("cqrs", str),
        "queue": Setting(None, str, help="this service's replica queue"),
        "consumer_prefetch_count": Setting(None, int, validate=_positive_or_none),
        "heartbeat": Setting(60, int, validate=_not_negative),
        "connection_options": Setting({}, dict, open=True, help="extra pika ConnectionParameters"),
        "master": Setting({}, dict, children=MASTER),
        "replica": Setting({}, dict, children=REPLICA),
    },
    legacy="CQRS",
)


def master_setting(key: str) -> Any:
    """``MESSAGING["CQRS"]["master"][key]`` or its default."""
    return settings.child("master", key)


def replica_setting(key: str) -> Any:
    """``MESSAGING["CQRS"]["replica"][key]`` or its default."""
    return settings.child("replica", key)


#: Replica keys django-cqrs reads or documents that have no effect here (``manage.py check``
#: says so): retry delays wait in broker-side delay queues, never in a worker's memory.
NO_EFFECT = ("delay_queue_max_size", "CQRS_DELAY_QUEUE_MAX_SIZE")


def dead_letter_queue() -> str:
    return replica_setting("dead_letter_queue") or f"dead_letter_{settings.queue}"
