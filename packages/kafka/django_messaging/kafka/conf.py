"""The ``MESSAGING["KAFKA"]`` settings section: every key of django-kafka's ``DJANGO_KAFKA``,
its default and its type. A project that still has ``DJANGO_KAFKA`` keeps working: that dict is
read when ``MESSAGING`` has no ``KAFKA`` section.

Every value is read when it is used (``settings.POLLING_FREQUENCY``), never captured at import.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from django_messaging.core.settings import Section, Setting
from django_messaging.kafka.retry.arguments import check_retry_arguments


def _retry_settings(value: Any) -> str | None:
    if value is None:
        return None
    try:
        check_retry_arguments(**value)
    except (TypeError, ValueError) as exc:
        return f"not valid RetrySettings arguments: {exc}"
    return None


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _default_client_id() -> str:
    return f"{socket.gethostname()}-python"


#: Keys of the Kafka clients, topics, consumers and retries.
KAFKA_SETTINGS: dict[str, Setting] = {
    "CLIENT_ID": Setting(_default_client_id(), str, help="client.id of producers and consumers"),
    "ERROR_HANDLER": Setting(
        "django_messaging.kafka.error_handlers.ClientErrorHandler",
        (str, type),
        imports=True,
        help="error_cb class (dotted path); fatal client errors raise DjangoKafkaError",
    ),
    "GLOBAL_CONFIG": Setting({}, dict, open=True, help="librdkafka config of every client"),
    "PRODUCER_CONFIG": Setting({}, dict, open=True, help="librdkafka config of the producer"),
    "CONSUMER_CONFIG": Setting({}, dict, open=True, help="librdkafka config of every consumer"),
    "RETRY_CONSUMER_CONFIG": Setting(
        {
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "topic.metadata.refresh.interval.ms": 10000,
        },
        dict,
        open=True,
        help="librdkafka config of the generated retry consumers",
    ),
    "RETRY_SETTINGS": Setting(None, dict, validate=_retry_settings),
    "RETRY_TOPIC_SUFFIX": Setting("retry", str),
    "DEAD_LETTER_TOPIC_SUFFIX": Setting("dlt", str),
    "POLLING_FREQUENCY": Setting(1, (int, float), validate=_positive),
    "SCHEMA_REGISTRY": Setting({}, dict, open=True),
    # Additions of django-messaging (not in django-kafka):
    "BATCH_SIZE": Setting(
        500, int, validate=_positive, help="most messages a consumer takes per poll"
    ),
    "ATOMIC": Setting(
        True, bool, help="run each TopicConsumer.consume() in transaction.atomic() by default"
    ),
    "DURABLE_TRANSPORT": Setting(
        "kafka",
        str,
        help="the outbox transport (MESSAGING['OUTBOX']['TRANSPORTS']) that relays the "
        "messages of durable topics and produce(..., on_commit=True)",
    ),
    "IDEMPOTENT": Setting(
        False,
        bool,
        help="record the id of each handled message and skip redeliveries (TopicConsumer."
        "idempotent: None); an idempotent topic runs in a transaction whatever ATOMIC says",
    ),
    "INBOX_ID_HEADERS": Setting(
        ["dop-msg-id"],
        (list, tuple),
        help="headers that carry a message's id (the outbox relay's dop-msg-id), first present "
        "wins; without one the id is topic/partition/offset",
    ),
    "INBOX_RETENTION_DAYS": Setting(
        7,
        (int, float),
        validate=_positive,
        help="days kafka_inbox_purge keeps the ids of processed messages by default",
    ),
    "DELIVERY_TIMEOUT": Setting(
        30,
        (int, float),
        validate=_positive,
        help="seconds to wait for a retry/dead-letter message to be confirmed, and for the "
        "producer to flush at exit",
    ),
    "REPRODUCER_NAMESPACE": Setting(
        None,
        str,
        help="prefix of the topics TopicReproducer writes to by default: "
        "'<namespace>.<source topic>' (django-kafka's REPRODUCER_CONFIG['namespace'])",
    ),
}


# --- Kafka Connect ----------------------------------------------------------------------------


def _check_connect_host(value: Any) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be the base URL of the Kafka Connect REST API, e.g. 'http://connect:8083'."
    return None


def _check_connect_auth(value: Any) -> str | None:
    if isinstance(value, type):  # a class is callable, but requests calls an instance
        return "must be a requests auth object (an instance) or a (username, password) pair."
    if value is None or not isinstance(value, tuple | list):
        return None
    if len(value) != 2 or not all(isinstance(part, str) for part in value):
        return "must be a requests auth object or a (username, password) pair of strings."
    return None


def _check_connect_retry(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    from urllib3.util.retry import Retry

    try:
        Retry(**value)
    except TypeError as exc:
        return f"is not a valid set of urllib3 Retry arguments: {exc}"
    return None


def _check_timeout(value: Any) -> str | None:
    numbers = value if isinstance(value, tuple | list) else (value,)
    if isinstance(value, tuple | list) and len(value) != 2:
        return "must be seconds, or a (connect, read) pair of seconds."
    if any(isinstance(n, bool) or not isinstance(n, int | float) or n <= 0 for n in numbers):
        return "must be a positive number of seconds, or a (connect, read) pair of them."
    return None


#: A (username, password) pair, or what requests calls with each request (``AuthBase`` and its
#: subclasses, or any callable): ``Callable`` rather than ``AuthBase``, so that reading the
#: settings does not import requests.
_AUTH_TYPES: tuple[type, ...] = (tuple, list, cast(type, Callable))

CONNECT_SETTINGS: dict[str, Setting] = {
    "CONNECT_HOST": Setting(
        None,
        str,
        validate=_check_connect_host,
        help="Base URL of the Kafka Connect REST API.",
    ),
    "CONNECT_AUTH": Setting(
        None,
        _AUTH_TYPES,
        secret=True,
        validate=_check_connect_auth,
        help="A requests auth object, or (username, password) for HTTP Basic auth.",
    ),
    "CONNECT_RETRY": Setting(
        {
            "connect": 5,
            "read": 5,
            "status": 5,
            "backoff_factor": 0.5,
            "status_forcelist": [502, 503, 504],
        },
        dict,
        open=True,
        validate=_check_connect_retry,
        help="Keyword arguments of urllib3.util.retry.Retry for every Connect request.",
    ),
    "CONNECT_REQUESTS_TIMEOUT": Setting(
        30,
        (int, float, tuple, list),
        validate=_check_timeout,
        help="Timeout in seconds of every Connect request (or a (connect, read) pair).",
    ),
    "CONNECTOR_NAME_PREFIX": Setting(
        "",
        str,
        help="Prefix of every connector name: '<prefix>.<ClassName>'.",
    ),
}

# --- end of Kafka Connect ---------------------------------------------------------------------

# --- Model sync -------------------------------------------------------------------------------

_DATABASE_KEYS = ("HOST", "NAME", "USER", "PASSWORD")


def _check_connect_database(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return None
    missing = [key for key in _DATABASE_KEYS if key not in value]
    if missing:
        return (
            f"misses {', '.join(missing)}: give HOST, PORT (optional), NAME, USER and PASSWORD "
            "of the database the JDBC sink connectors write to, or the alias of a DATABASES entry."
        )
    return None


def _check_db_schema(value: Any) -> str | None:
    return None if value.strip() else "must be a schema name, e.g. 'public'."


MODEL_SYNC_SETTINGS: dict[str, Setting] = {
    "MODEL_SYNC_SOURCE_CONNECTOR": Setting(
        None,
        str,
        imports=True,
        help="Dotted path of the Connector that every ModelSync source without its own "
        "connector is added to (its config gets their tables, keys, columns and routes).",
    ),
    "MODEL_SYNC_TOPIC_PREFIX": Setting(
        None,
        str,
        help="First part of a ModelSync's topic when it sets none: "
        "'<prefix>.<MODEL_SYNC_DB_SCHEMA>.<table>' (Debezium's topic.prefix).",
    ),
    "MODEL_SYNC_DB_SCHEMA": Setting(
        "public",
        str,
        validate=_check_db_schema,
        help="Database schema of the synced tables, in Debezium table lists and topic names.",
    ),
    "MODEL_SYNC_CONSUMER": Setting(
        None,
        str,
        imports=True,
        help="Dotted path of the Consumer that runs the topics of PythonSink/PythonAvroSink "
        "declarations without their own consumer=.",
    ),
    "MODEL_SYNC_ENRICHER_CONSUMER": Setting(
        "django_messaging.kafka.models.model_sync.enricher.ModelSyncEnricherConsumer",
        str,
        imports=True,
        help="Dotted path of the Consumer that runs the enrichers of ModelSyncs with "
        "enrich_transforms (raw topic -> transforms -> public topic).",
    ),
    "MODEL_SYNC_ENRICHER_GROUP": Setting(
        "django-messaging.model-sync-enricher",
        str,
        help="group.id of the default MODEL_SYNC_ENRICHER_CONSUMER.",
    ),
    "CONNECT_DATABASE": Setting(
        None,
        (dict, str),
        secret=True,
        validate=_check_connect_database,
        help="Database the JDBC sink connectors of ModelSync write to: a dict of HOST, PORT, "
        "NAME, USER, PASSWORD (as in DATABASES, as Kafka Connect reaches it), or a DATABASES "
        "alias.",
    ),
}

# --- end of model sync ------------------------------------------------------------------------


settings = Section(
    "KAFKA",
    "django_messaging.kafka",
    {**KAFKA_SETTINGS, **CONNECT_SETTINGS, **MODEL_SYNC_SETTINGS},
    legacy="DJANGO_KAFKA",
)


def retry_topic_suffix() -> str:
    return str(settings.RETRY_TOPIC_SUFFIX)


def dead_letter_topic_suffix() -> str:
    return str(settings.DEAD_LETTER_TOPIC_SUFFIX)
