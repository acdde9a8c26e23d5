"""The ``MESSAGING["KAFKA"]`` settings section: every key of django-kafka's ``DJANGO_KAFKA``,
its default and its type. A project that still has ``DJANGO_KAFKA`` keeps working: that dict is
read when ``MESSAGING`` has no ``KAFKA`` section.

Every value is read when it is used (``settings.POLLING_FREQUENCY``), never captured at import.
"""

from __future__ import annotations

import socket
from typing import Any

from django_messaging.core.settings import Section, Setting


def _retry_settings(value: Any) -> str | None:
    if value is None:
        return None
    from django_messaging.kafka.retry.settings import RetrySettings

    try:
        RetrySettings(**value)
    except (TypeError, ValueError) as exc:
        return f"not valid RetrySettings arguments: {exc}"
    return None


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _default_client_id() -> str:
    return f"{socket.gethostname()}-python"


SCHEMA: dict[str, Setting] = {
    "CLIENT_ID": Setting(_default_client_id(), str, help="client.id of producers and consumers"),
    "ERROR_HANDLER": Setting(
        "django_messaging.kafka.error_handlers.ClientErrorHandler",
        (str, type),
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
    # Kafka Connect (connect/): the REST API of the Connect cluster.
    "CONNECT_HOST": Setting(None, str),
    "CONNECT_AUTH": Setting(None, None, secret=True),
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
    ),
    "CONNECT_REQUESTS_TIMEOUT": Setting(30, (int, float)),
    "CONNECTOR_NAME_PREFIX": Setting("", str),
    # Additions of django-messaging (not in django-kafka):
    "BATCH_SIZE": Setting(
        500, int, validate=_positive, help="most messages a consumer takes per poll"
    ),
    "ATOMIC": Setting(
        True, bool, help="run each TopicConsumer.consume() in transaction.atomic() by default"
    ),
    "DELIVERY_TIMEOUT": Setting(
        30,
        (int, float),
        validate=_positive,
        help="seconds to wait for a retry/dead-letter message to be confirmed",
    ),
}

settings = Section("KAFKA", "django_messaging.kafka", SCHEMA, legacy="DJANGO_KAFKA")


def retry_topic_suffix() -> str:
    return str(settings.RETRY_TOPIC_SUFFIX)


def dead_letter_topic_suffix() -> str:
    return str(settings.DEAD_LETTER_TOPIC_SUFFIX)
