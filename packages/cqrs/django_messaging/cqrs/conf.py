"""The ``MESSAGING["CQRS"]`` settings section: every key, its default and its type.

The keys are django-cqrs's ``CQRS`` dict keys with the same meaning, spelled in the one style of
``MESSAGING`` (upper case, no ``CQRS_`` prefix: ``MASTER``/``OUTBOX_GRACE``); django-cqrs's
spellings (``master``/``CQRS_OUTBOX_GRACE``, ``url``...) stay accepted as aliases. A project that
still has a top-level ``CQRS`` setting keeps working (``legacy="CQRS"``) while it moves to
``MESSAGING``.
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
    "AUTO_UPDATE_FIELDS": Setting(
        False,
        bool,
        help="save(update_fields=...) also bumps the revision and publishes",
        aliases=("CQRS_AUTO_UPDATE_FIELDS",),
    ),
    "MESSAGE_TTL": Setting(
        86400,
        (int, type(None)),
        validate=_positive_or_none,
        help="seconds a message stays valid (None: forever)",
        aliases=("CQRS_MESSAGE_TTL",),
    ),
    "CORRELATION_FUNCTION": Setting(
        None,
        None,
        imports=True,
        help="callable or dotted path: (signal_type, cqrs_id, pk, queue)",
        aliases=("correlation_function",),
    ),
    "META_FUNCTION": Setting(
        None,
        None,
        imports=True,
        help="callable or dotted path: meta for every payload",
        aliases=("meta_function",),
    ),
    "PUBLISH_CONFIRMS": Setting(
        "outbox",
        str,
        validate=lambda v: (
            None
            if v in ("outbox", "each", "pipelined")
            else "must be 'outbox', 'each' or 'pipelined'"
        ),
        help="store in the transaction and collect confirms later, wait for each, or pipelined",
        aliases=("CQRS_PUBLISH_CONFIRMS",),
    ),
    "OUTBOX_GRACE": Setting(
        60,
        (int, float),
        validate=_not_negative,
        help="seconds before a stored, unconfirmed message is re-sent by another process",
        aliases=("CQRS_OUTBOX_GRACE",),
    ),
    "CONFIRM_WINDOW": Setting(
        1000,
        int,
        validate=_positive_or_none,
        help="unconfirmed messages allowed (outbox, pipelined)",
        aliases=("CQRS_CONFIRM_WINDOW",),
    ),
    "PENDING_FLUSH_BATCH": Setting(
        500,
        int,
        validate=_positive_or_none,
        help="stored messages the relay claims at once",
        aliases=("CQRS_PENDING_FLUSH_BATCH",),
    ),
    "RELAY_CLAIM_TIMEOUT": Setting(
        10.0,
        (int, float),
        validate=lambda v: None if v > 0 else "must be positive",
        help="seconds a relay's lease on stored messages lasts (renewed while it lives)",
    ),
    "PREPARED_STATEMENTS": Setting(
        True,
        bool,
        help="outbox on PostgreSQL (psycopg 3): prepare the statement that writes a saved row "
        "and its message row",
        aliases=("CQRS_PREPARED_STATEMENTS",),
    ),
}

REPLICA = {
    "MAX_RETRIES": Setting(
        30,
        (int, type(None)),
        validate=_not_negative,
        help="None: retry forever",
        aliases=("CQRS_MAX_RETRIES",),
    ),
    "RETRY_DELAY": Setting(
        2, (int, float), validate=_not_negative, help="seconds", aliases=("CQRS_RETRY_DELAY",)
    ),
    "DELAY_QUEUE_MAX_SIZE": Setting(
        1000,
        (int, type(None)),
        validate=_positive_or_none,
        help="no effect (a check warns): delays are broker-side",
        aliases=("delay_queue_max_size",),
    ),
    # The spelling django-cqrs documents (its code reads only delay_queue_max_size): a key of
    # its own, so that a project giving both spellings is not refused.
    "CQRS_DELAY_QUEUE_MAX_SIZE": Setting(
        None,
        (int, type(None)),
        validate=_positive_or_none,
        help="no effect (a check warns): delays are broker-side",
    ),
    "DEAD_LETTER_QUEUE": Setting(
        None, str, help="default: 'dead_letter_' + queue", aliases=("dead_letter_queue",)
    ),
    "DEAD_MESSAGE_TTL": Setting(
        864000,
        (int, type(None)),
        validate=_positive_or_none,
        help="seconds; None: keep",
        aliases=("dead_message_ttl",),
    ),
    "QUERY_TIMEOUT": Setting(
        0,
        int,
        validate=_not_negative,
        help="ms, per message (PostgreSQL)",
        aliases=("CQRS_QUERY_TIMEOUT",),
    ),
    "LOG_TIMED_OUT_QUERIES": Setting(False, bool, aliases=("CQRS_LOG_TIMED_OUT_QUERIES",)),
    "QUERY_LOGGER": Setting("django_messaging.cqrs.queries", str, aliases=("CQRS_QUERY_LOGGER",)),
    "BATCH_SIZE": Setting(
        200,
        int,
        validate=_positive_or_none,
        help="messages applied per database transaction",
        aliases=("CQRS_BATCH_SIZE",),
    ),
    "TOMBSTONE_TTL": Setting(
        7 * 86400,
        int,
        validate=_positive_or_none,
        help="seconds a delete is remembered",
        aliases=("CQRS_TOMBSTONE_TTL",),
    ),
}

KAFKA = {
    "CONFIG": Setting(
        {},
        dict,
        open=True,
        help="librdkafka configuration of the Kafka transport's producers and consumers, over "
        "MESSAGING['KAFKA']['GLOBAL_CONFIG'] (and its PRODUCER_CONFIG / CONSUMER_CONFIG)",
    ),
    "CREATE_TOPICS": Setting(
        True,
        bool,
        help="create a missing topic (CQRS id, retry, dead letter) instead of refusing",
    ),
    "TOPIC_PARTITIONS": Setting(
        1,
        int,
        validate=_positive_or_none,
        help="partitions of a topic the transport creates (cqrs_consume -w N shares them)",
    ),
}

settings = Section(
    "CQRS",
    "django_messaging.cqrs",
    {
        "TRANSPORT": Setting(
            "django_messaging.cqrs.transport.RabbitMQTransport",
            (str, type),
            imports=True,
            help="dotted path of a BaseTransport subclass",
            aliases=("transport",),
        ),
        "URL": Setting(None, str, secret=True, validate=_url, aliases=("url",)),
        "HOST": Setting(None, str, aliases=("host",)),
        "PORT": Setting(None, int, aliases=("port",)),
        "USER": Setting(None, str, aliases=("user",)),
        "PASSWORD": Setting(None, str, secret=True, aliases=("password",)),
        "EXCHANGE": Setting("cqrs", str, aliases=("exchange",)),
        "QUEUE": Setting(None, str, help="this service's replica queue", aliases=("queue",)),
        "CONSUMER_PREFETCH_COUNT": Setting(
            None, int, validate=_positive_or_none, aliases=("consumer_prefetch_count",)
        ),
        "HEARTBEAT": Setting(60, int, validate=_not_negative, aliases=("heartbeat",)),
        "CONNECTION_OPTIONS": Setting(
            {},
            dict,
            open=True,
            help="extra pika ConnectionParameters",
            aliases=("connection_options",),
        ),
        "MASTER": Setting({}, dict, children=MASTER, aliases=("master",)),
        "REPLICA": Setting({}, dict, children=REPLICA, aliases=("replica",)),
        "KAFKA": Setting(
            {}, dict, children=KAFKA, help="the Kafka transport (KafkaTransport) only"
        ),
    },
    legacy="CQRS",
)


def master_setting(key: str) -> Any:
    """``MESSAGING["CQRS"]["MASTER"][key]`` or its default."""
    return settings.child("MASTER", key)


def replica_setting(key: str) -> Any:
    """``MESSAGING["CQRS"]["REPLICA"][key]`` or its default."""
    return settings.child("REPLICA", key)


#: Replica keys django-cqrs reads or documents that have no effect here (``manage.py check``
#: says so): retry delays wait in broker-side delay queues, never in a worker's memory.
NO_EFFECT = ("DELAY_QUEUE_MAX_SIZE", "delay_queue_max_size", "CQRS_DELAY_QUEUE_MAX_SIZE")


def kafka_setting(key: str) -> Any:
    """``MESSAGING["CQRS"]["KAFKA"][key]`` or its default."""
    return settings.child("KAFKA", key)


def dead_letter_queue() -> str:
    return replica_setting("DEAD_LETTER_QUEUE") or f"dead_letter_{settings.QUEUE}"
