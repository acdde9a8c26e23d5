"""The ``MESSAGING["OUTBOX"]`` settings section: every key, its default and its type.

The keys are django-outbox-pattern's documented ``DEFAULT_*`` settings with the same defaults,
plus the relay, subscriber and retention keys this package adds. A project that still has a
top-level ``DJANGO_OUTBOX_PATTERN`` dict is read from there until it moves to ``MESSAGING``.
"""

from __future__ import annotations

from typing import Any

from django_messaging.core.settings import Section, Setting


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _positive_or_none(value: Any) -> str | None:
    return None if value is None else _positive(value)


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def _host_and_ports(value: Any) -> str | None:
    if not value:
        return "needs at least one (host, port) pair"
    for item in value:
        if not (
            isinstance(item, list | tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
        ):
            return f"every entry must be a (host, port) pair, got {item!r}"
    return None


def _heartbeats(value: Any) -> str | None:
    if len(value) != 2 or not all(isinstance(v, int) and v >= 0 for v in value):
        return "must be a pair of milliseconds (outgoing, incoming), e.g. (10000, 10000)"
    return None


def _string_list(value: Any) -> str | None:
    if not value or not all(isinstance(v, str) and v for v in value):
        return "must be a non-empty list of header names"
    return None


NUMBER = (int, float)

settings = Section(
    "OUTBOX",
    "django_messaging.outbox",
    {
        # --- django-outbox-pattern's documented settings, same names and defaults ---------------
        "DEFAULT_CONNECTION_CLASS": Setting("stomp.StompConnection12", (str, type), imports=True),
        "DEFAULT_CONSUMER_LISTENER_CLASS": Setting(
            "django_messaging.outbox.listeners.ConsumerListener", (str, type), imports=True
        ),
        "DEFAULT_PRODUCER_LISTENER_CLASS": Setting(
            "django_messaging.outbox.listeners.ProducerListener", (str, type), imports=True
        ),
        "DEFAULT_GENERATE_HEADERS": Setting(
            "django_messaging.outbox.headers.generate_headers", None, imports=True
        ),
        "DEFAULT_MAXIMUM_BACKOFF": Setting(3600, NUMBER, validate=_positive),
        "DEFAULT_MAXIMUM_RETRY_ATTEMPTS": Setting(50, int, validate=_positive),
        "DEFAULT_PAUSE_FOR_RETRY": Setting(240, NUMBER, validate=_not_negative),
        "DEFAULT_WAIT_RETRY": Setting(60, NUMBER, validate=_not_negative),
        "DEFAULT_STOMP_HOST_AND_PORTS": Setting(
            [("127.0.0.1", 61613)], (list, tuple), validate=_host_and_ports
        ),
        "DEFAULT_STOMP_QUEUE_HEADERS": Setting(
            {"durable": "true", "auto-delete": "false", "prefetch-count": "1"}, dict, open=True
        ),
        "DEFAULT_STOMP_HEARTBEATS": Setting((10000, 10000), (list, tuple), validate=_heartbeats),
        "DEFAULT_STOMP_VHOST": Setting("/", str),
        "DEFAULT_STOMP_USERNAME": Setting("guest", str),
        "DEFAULT_STOMP_PASSCODE": Setting("guest", str, secret=True),
        "DEFAULT_STOMP_USE_SSL": Setting(False, bool),
        "DEFAULT_STOMP_KEY_FILE": Setting(None, str),
        "DEFAULT_STOMP_CERT_FILE": Setting(None, str),
        "DEFAULT_STOMP_CA_CERTS": Setting(None, str),
        "DEFAULT_STOMP_CERT_VALIDATOR": Setting(None, None, imports=True),
        "DEFAULT_STOMP_SSL_VERSION": Setting(None, int),
        "DEFAULT_STOMP_SSL_PASSWORD": Setting(None, str, secret=True),
        # --- relay (``./manage.py publish``) ---------------------------------------------------
        # Rows claimed and sent per batch (3.x's DEFAULT_PUBLISHED_CHUNK_SIZE, same meaning).
        "DEFAULT_PUBLISHED_CHUNK_SIZE": Setting(500, int, validate=_positive),
        # Seconds the relay waits before looking again when nothing was pending.
        "DEFAULT_PRODUCER_WAITING_TIME": Setting(1.0, NUMBER, validate=_positive),
        # Seconds to wait for the broker's receipts of one batch before it counts as failed.
        "DEFAULT_RECEIPT_TIMEOUT": Setting(30.0, NUMBER, validate=_positive),
        # Seconds a claim lasts unless renewed; a live relay renews its claims every third of
        # it, so the rows of a relay that died are claimed by another after at most this.
        "DEFAULT_RELAY_CLAIM_TIMEOUT": Setting(10.0, NUMBER, validate=_positive),
        # Named serializer (core registry) that encodes bodies on the wire and decodes them.
        "DEFAULT_BODY_SERIALIZER": Setting("json", str),
        # --- subscriber (``./manage.py subscribe``) --------------------------------------------
        # Headers that carry the idempotency key, first present wins. Never the broker's
        # per-delivery ``message-id``: it changes on redelivery.
        "DEFAULT_CONSUMER_ID_HEADERS": Setting(
            ["dop-msg-id", "cap-msg-id"], (list, tuple), validate=_string_list
        ),
        # Calls of a raising callback before the message is dead-lettered (1 = no retry).
        "DEFAULT_CONSUMER_MAX_RETRY_ATTEMPTS": Setting(3, int, validate=_positive),
        # Seconds between callback attempts, multiplied by the attempt number.
        "DEFAULT_CONSUMER_RETRY_WAIT": Setting(2.0, NUMBER, validate=_not_negative),
        # Unacknowledged messages the broker sends ahead (the subscription's prefetch-count,
        # over DEFAULT_STOMP_QUEUE_HEADERS'); None leaves it to those headers.
        "DEFAULT_CONSUMER_PREFETCH_COUNT": Setting(
            200, (int, type(None)), validate=_positive_or_none
        ),
        # Prefix of the dead-letter queue of each subscription queue: ``DLQ.<queue>``.
        "DEFAULT_DEAD_LETTER_PREFIX": Setting("DLQ.", str),
        # --- transports: name -> {"BACKEND": "stomp" | "kafka" | "amqp" | path, "OPTIONS": {}}
        # (see transports/named.py); "default" is STOMP over DEFAULT_STOMP_* unless defined.
        "TRANSPORTS": Setting({}, dict, open=True),
        # --- retention (``./manage.py outbox_purge``) ------------------------------------------
        "DAYS_TO_KEEP_DATA": Setting(30, NUMBER, validate=_positive),
        "DEFAULT_PURGE_BATCH_SIZE": Setting(500, int, validate=_positive),
    },
    legacy="DJANGO_OUTBOX_PATTERN",
)
