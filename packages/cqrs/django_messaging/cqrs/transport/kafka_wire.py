"""The CQRS wire mapping on Kafka (topics, record keys, headers) and the client configurations;
see :mod:`.kafka` for what they mean."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from django_messaging.core.settings import messaging_dict
from django_messaging.core.transports import OutgoingMessage
from django_messaging.core.transports import kafka as core_kafka
from django_messaging.cqrs.conf import dead_letter_queue, kafka_setting, replica_setting, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.transport.wire import CONTENT_TYPE, QUEUE_HEADER

__all__ = [
    "CONFIRM_TIMEOUT",
    "RETRY_AT_HEADER",
    "KafkaRelayTransport",
    "consumer_config",
    "dead_letter_topic",
    "ensure_topics",
    "producer_config",
    "record",
    "record_key",
    "retry_topic",
    "topic_of",
]

logger = logging.getLogger(__name__)

#: Seconds to wait for a delivery report before a message counts as not sent.
CONFIRM_TIMEOUT = 10.0
#: When a retried message is due (epoch milliseconds).
RETRY_AT_HEADER = "x-cqrs-retry-at"


# -- the wire mapping -------------------------------------------------------------------------
def topic_of(cqrs_id: str) -> str:
    """The topic of a CQRS id's messages: ``<EXCHANGE>.<CQRS_ID>``."""
    return f"{settings.EXCHANGE}.{cqrs_id}"


def retry_topic() -> str:
    return f"{settings.QUEUE}.retry"


def dead_letter_topic() -> str:
    return dead_letter_queue()


def record_key(payload: TransportPayload) -> bytes:
    """``<CQRS_ID>:<pk>``: one instance, one partition, its messages in order."""
    return f"{payload.cqrs_id}:{payload.pk}".encode()


def record(
    payload: TransportPayload,
    key: Hashable,
    body: bytes | None = None,
    extra: Mapping[str, str] | None = None,
) -> OutgoingMessage:
    """The Kafka record of a master's message (``key`` is what the confirmation names);
    ``extra``: more headers (a trace context)."""
    headers: list[tuple[str, bytes | None]] = [("content-type", CONTENT_TYPE.encode())]
    if payload.queue:
        headers.append((QUEUE_HEADER, payload.queue.encode()))
    if extra:
        headers += [(name, value.encode()) for name, value in extra.items()]
    return OutgoingMessage(
        key=key,
        destination=topic_of(payload.cqrs_id),
        body=payload.body() if body is None else body,
        content_type=CONTENT_TYPE,
        raw_key=record_key(payload),
        raw_headers=headers,
    )


def _kafka_section(*parts: str) -> dict[str, Any]:
    section = messaging_dict().get("KAFKA")
    config: dict[str, Any] = {}
    if isinstance(section, Mapping):
        for part in parts:
            value = section.get(part)
            if isinstance(value, Mapping):
                config.update(value)
    return config


def producer_config() -> dict[str, Any]:
    """``MESSAGING["KAFKA"]``'s ``GLOBAL_CONFIG`` and ``PRODUCER_CONFIG``, then
    ``MESSAGING["CQRS"]["KAFKA"]["CONFIG"]``."""
    return {**_kafka_section("GLOBAL_CONFIG", "PRODUCER_CONFIG"), **kafka_setting("CONFIG")}


def consumer_config() -> dict[str, Any]:
    """The replica's consumer: ``GLOBAL_CONFIG`` and ``CONSUMER_CONFIG`` of
    ``MESSAGING["KAFKA"]``, then ``MESSAGING["CQRS"]["KAFKA"]["CONFIG"]``; the group is
    ``QUEUE`` and offsets are committed by the replica only."""
    config = {
        "auto.offset.reset": "earliest",
        **_kafka_section("GLOBAL_CONFIG", "CONSUMER_CONFIG"),
        **kafka_setting("CONFIG"),
    }
    for producer_only in ("linger.ms", "enable.idempotence", "acks", "compression.type"):
        config.pop(producer_only, None)
    config.update(
        {
            "group.id": settings.QUEUE,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
        }
    )
    return config


class KafkaRelayTransport(core_kafka.KafkaTransport):
    """Core's Kafka transport with the CQRS wire mapping: each message the relay hands over
    (a :class:`~.base.PayloadMessage`) becomes the record of :func:`record`."""

    #: ``messaging.system`` of the relay's send spans.
    messaging_system = "kafka"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(
            producer_config() if config is None else config,
            create_topics=bool(kafka_setting("CREATE_TOPICS")),
            topic_partitions=int(kafka_setting("TOPIC_PARTITIONS")),
        )

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        records: list[OutgoingMessage] = []
        for message in messages:
            payload = getattr(message, "payload", None)
            if payload is None:
                self._reject(message.key, f"{type(message).__name__} carries no CQRS payload")
                continue
            records.append(record(payload, message.key, message.body, message.headers))
        return super().send(records)


def ensure_topics(names: Sequence[str], config: Mapping[str, Any]) -> None:
    """Create the missing topics among ``names`` (``CREATE_TOPICS``), or raise naming them.

    The dead letter topic gets ``retention.ms`` from ``DEAD_MESSAGE_TTL``.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(
        {k: v for k, v in config.items() if k.startswith(core_kafka._ADMIN_PREFIXES)}
    )
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except KafkaException as exc:
        raise core_kafka.KafkaTransportError(
            f"cannot reach Kafka at {config.get('bootstrap.servers')!r}: {exc}"
        ) from exc
    missing = sorted(set(names) - existing)
    if not missing:
        return
    if not kafka_setting("CREATE_TOPICS"):
        raise core_kafka.KafkaTransportError(
            f"Kafka topics {missing} do not exist: create them, or set "
            "MESSAGING['CQRS']['KAFKA']['CREATE_TOPICS'] = True"
        )
    ttl = replica_setting("DEAD_MESSAGE_TTL")
    partitions = int(kafka_setting("TOPIC_PARTITIONS"))
    topics = [
        NewTopic(
            name,
            num_partitions=partitions,
            config={"retention.ms": str(int(ttl) * 1000)}
            if ttl and name == dead_letter_topic()
            else {},
        )
        for name in missing
    ]
    for name, future in admin.create_topics(topics, operation_timeout=10).items():
        try:
            future.result(10)
            logger.info("created Kafka topic %s (%d partitions)", name, partitions)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (
                isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):
                raise core_kafka.KafkaTransportError(
                    f"cannot create Kafka topic {name!r}: {exc}"
                ) from exc
