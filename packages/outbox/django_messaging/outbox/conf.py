"""The ``MESSAGING["OUTBOX"]`` settings section: every key, its default and its type.

The keys are django-outbox-pattern's documented settings with the same defaults, spelled in the
one style of ``MESSAGING`` (upper case, no ``DEFAULT_`` prefix: ``RELAY_CLAIM_TIMEOUT``); the
seed's ``DEFAULT_*`` spellings stay accepted as aliases. Then the relay, subscriber and retention
keys this package adds. A project that still has a
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


def _database_aliases(value: Any) -> str | None:
    from django.conf import settings as django_settings

    for alias in value:
        if alias not in django_settings.DATABASES:
            return (
                f"names {alias!r}, which is not in DATABASES "
                f"(known: {', '.join(django_settings.DATABASES)})"
            )
    if len(set(value)) != len(value):
        return "names a database twice"
    return None


NUMBER = (int, float)

settings = Section(
    "OUTBOX",
    "django_messaging.outbox",
    {
        # --- django-outbox-pattern's documented settings, same names and defaults ---------------
        "CONNECTION_CLASS": Setting(
            "stomp.StompConnection12",
            (str, type),
            imports=True,
            aliases=("DEFAULT_CONNECTION_CLASS",),
        ),
        "CONSUMER_LISTENER_CLASS": Setting(
            "django_messaging.outbox.listeners.ConsumerListener",
            (str, type),
            imports=True,
            aliases=("DEFAULT_CONSUMER_LISTENER_CLASS",),
        ),
        "PRODUCER_LISTENER_CLASS": Setting(
            "django_messaging.outbox.listeners.ProducerListener",
            (str, type),
            imports=True,
            aliases=("DEFAULT_PRODUCER_LISTENER_CLASS",),
        ),
        "GENERATE_HEADERS": Setting(
            "django_messaging.outbox.headers.generate_headers",
            None,
            imports=True,
            aliases=("DEFAULT_GENERATE_HEADERS",),
        ),
        "MAXIMUM_BACKOFF": Setting(
            3600, NUMBER, validate=_positive, aliases=("DEFAULT_MAXIMUM_BACKOFF",)
        ),
        "MAXIMUM_RETRY_ATTEMPTS": Setting(
            50, int, validate=_positive, aliases=("DEFAULT_MAXIMUM_RETRY_ATTEMPTS",)
        ),
        "PAUSE_FOR_RETRY": Setting(
            240, NUMBER, validate=_not_negative, aliases=("DEFAULT_PAUSE_FOR_RETRY",)
        ),
        "WAIT_RETRY": Setting(60, NUMBER, validate=_not_negative, aliases=("DEFAULT_WAIT_RETRY",)),
        "STOMP_HOST_AND_PORTS": Setting(
            [("127.0.0.1", 61613)],
            (list, tuple),
            validate=_host_and_ports,
            aliases=("DEFAULT_STOMP_HOST_AND_PORTS",),
        ),
        "STOMP_QUEUE_HEADERS": Setting(
            {"durable": "true", "auto-delete": "false", "prefetch-count": "1"},
            dict,
            open=True,
            aliases=("DEFAULT_STOMP_QUEUE_HEADERS",),
        ),
        "STOMP_HEARTBEATS": Setting(
            (10000, 10000),
            (list, tuple),
            validate=_heartbeats,
            aliases=("DEFAULT_STOMP_HEARTBEATS",),
        ),
        "STOMP_VHOST": Setting("/", str, aliases=("DEFAULT_STOMP_VHOST",)),
        "STOMP_USERNAME": Setting("guest", str, aliases=("DEFAULT_STOMP_USERNAME",)),
        "STOMP_PASSCODE": Setting("guest", str, secret=True, aliases=("DEFAULT_STOMP_PASSCODE",)),
        "STOMP_USE_SSL": Setting(False, bool, aliases=("DEFAULT_STOMP_USE_SSL",)),
        "STOMP_KEY_FILE": Setting(None, str, aliases=("DEFAULT_STOMP_KEY_FILE",)),
        "STOMP_CERT_FILE": Setting(None, str, aliases=("DEFAULT_STOMP_CERT_FILE",)),
        "STOMP_CA_CERTS": Setting(None, str, aliases=("DEFAULT_STOMP_CA_CERTS",)),
        "STOMP_CERT_VALIDATOR": Setting(
            None, None, imports=True, aliases=("DEFAULT_STOMP_CERT_VALIDATOR",)
        ),
        "STOMP_SSL_VERSION": Setting(None, int, aliases=("DEFAULT_STOMP_SSL_VERSION",)),
        "STOMP_SSL_PASSWORD": Setting(
            None, str, secret=True, aliases=("DEFAULT_STOMP_SSL_PASSWORD",)
        ),
        # --- relay (``./manage.py publish``) ---------------------------------------------------
        # Rows claimed and sent per batch (3.x's DEFAULT_PUBLISHED_CHUNK_SIZE, same meaning).
        "PUBLISHED_CHUNK_SIZE": Setting(
            500, int, validate=_positive, aliases=("DEFAULT_PUBLISHED_CHUNK_SIZE",)
        ),
        # Seconds the relay waits before looking again when nothing was pending.
        "PRODUCER_WAITING_TIME": Setting(
            1.0, NUMBER, validate=_positive, aliases=("DEFAULT_PRODUCER_WAITING_TIME",)
        ),
        # Seconds to wait for the broker's receipts of one batch before it counts as failed.
        "RECEIPT_TIMEOUT": Setting(
            30.0, NUMBER, validate=_positive, aliases=("DEFAULT_RECEIPT_TIMEOUT",)
        ),
        # Seconds a claim lasts unless renewed; a live relay renews its claims every third of
        # it, so the rows of a relay that died are claimed by another after at most this.
        "RELAY_CLAIM_TIMEOUT": Setting(
            10.0, NUMBER, validate=_positive, aliases=("DEFAULT_RELAY_CLAIM_TIMEOUT",)
        ),
        # Named serializer (core registry) that encodes bodies on the wire and decodes them.
        "BODY_SERIALIZER": Setting("json", str, aliases=("DEFAULT_BODY_SERIALIZER",)),
        # --- subscriber (``./manage.py subscribe``) --------------------------------------------
        # Headers that carry the idempotency key, first present wins. Never the broker's
        # per-delivery ``message-id``: it changes on redelivery.
        "CONSUMER_ID_HEADERS": Setting(
            ["dop-msg-id", "cap-msg-id"],
            (list, tuple),
            validate=_string_list,
            aliases=("DEFAULT_CONSUMER_ID_HEADERS",),
        ),
        # Calls of a raising callback before the message is dead-lettered (1 = no retry).
        "CONSUMER_MAX_RETRY_ATTEMPTS": Setting(
            3, int, validate=_positive, aliases=("DEFAULT_CONSUMER_MAX_RETRY_ATTEMPTS",)
        ),
        # Seconds between callback attempts, multiplied by the attempt number.
        "CONSUMER_RETRY_WAIT": Setting(
            2.0, NUMBER, validate=_not_negative, aliases=("DEFAULT_CONSUMER_RETRY_WAIT",)
        ),
        # Unacknowledged messages the broker sends ahead (the subscription's prefetch-count,
        # over STOMP_QUEUE_HEADERS'); None leaves it to those headers.
        "CONSUMER_PREFETCH_COUNT": Setting(
            200,
            (int, type(None)),
            validate=_positive_or_none,
            aliases=("DEFAULT_CONSUMER_PREFETCH_COUNT",),
        ),
        # The subscription queue is exclusive to the subscriber's connection (3.x's setting):
        # no other connection may consume it, and RabbitMQ deletes it when the connection ends.
        "EXCLUSIVE_QUEUE": Setting(False, bool, aliases=("DEFAULT_EXCLUSIVE_QUEUE",)),
        # Seconds SIGTERM waits for the messages in hand before the subscriber exits without
        # them (they are redelivered); None waits as long as they take (3.x's setting).
        "CONSUMER_SHUTDOWN_TIMEOUT": Setting(
            90,
            (int, float, type(None)),
            validate=_positive_or_none,
            aliases=("DEFAULT_CONSUMER_SHUTDOWN_TIMEOUT",),
        ),
        # Prefix of the dead-letter queue of each subscription queue: ``DLQ.<queue>``.
        "DEAD_LETTER_PREFIX": Setting("DLQ.", str, aliases=("DEFAULT_DEAD_LETTER_PREFIX",)),
        # --- correlation id (``dop-correlation-id``, see correlation.py) ----------------------
        # The request header CorrelationIdMiddleware reads the current request's id from.
        "CORRELATION_ID_REQUEST_HEADER": Setting("X-Request-ID", str),
        # A function () -> str | None returning the current request's id (for projects whose
        # request ids come from another package); None: the middleware's id.
        "CORRELATION_ID_FUNCTION": Setting(None, None, imports=True),
        # --- transports: name -> {"BACKEND": "stomp" | "kafka" | "amqp" | path, "OPTIONS": {}}
        # (see transports/named.py); "default" is STOMP over STOMP_* unless defined.
        "TRANSPORTS": Setting({}, dict, open=True),
        # --- databases: the aliases of DATABASES that hold outbox rows, which ``publish`` relays,
        # ``outbox_purge`` purges and ``messaging_status`` reports on; empty: the database the
        # router gives for writing Published. (``--database`` of a command overrides it.)
        "DATABASES": Setting([], (list, tuple), validate=_database_aliases),
        # --- retention (``./manage.py outbox_purge``) ------------------------------------------
        "DAYS_TO_KEEP_DATA": Setting(30, NUMBER, validate=_positive),
        "PURGE_BATCH_SIZE": Setting(
            500, int, validate=_positive, aliases=("DEFAULT_PURGE_BATCH_SIZE",)
        ),
    },
    legacy="DJANGO_OUTBOX_PATTERN",
)
