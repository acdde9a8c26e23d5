"""Confirmed production of retry and dead-letter messages, creating their topics when missing.

A retry or dead-letter copy must be acknowledged by the broker before the original's offset is
stored, otherwise a failed delivery would lose the message. :func:`deliver` produces, waits for
the delivery report and raises :class:`DjangoKafkaError` when the broker did not take it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from django_messaging.kafka.clients import shared
from django_messaging.kafka.conf import settings
from django_messaging.kafka.exceptions import DjangoKafkaError

logger = logging.getLogger(__name__)

_known_topics: set[str] = set()
_lock = threading.Lock()


@shared.on_reset
def reset() -> None:
    """Forget the topics known to exist (the settings changed)."""
    _known_topics.clear()


def admin_client() -> AdminClient:
    return shared.admin


def ensure_topics(names: list[str], num_partitions: int = 1, timeout: float = 10.0) -> None:
    """Create the topics that do not exist yet (an existing topic is fine)."""
    missing = [n for n in names if n not in _known_topics]
    if not missing:
        return
    with _lock:
        client = admin_client()
        futures = client.create_topics(
            [NewTopic(n, num_partitions=max(1, num_partitions)) for n in missing],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
                logger.info("created topic %s (%d partitions)", name, num_partitions)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise DjangoKafkaError(f"cannot create topic {name!r}: {exc}") from exc
            _known_topics.add(name)


def deliver(
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: list[tuple[str, Any]],
    num_partitions: int = 1,
) -> tuple[int, int]:
    """Produce one message and wait for the broker's acknowledgement; returns (partition, offset)."""
    ensure_topics([topic], num_partitions)
    report: dict[str, Any] = {}

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        report["error"] = err
        report["msg"] = msg

    producer = shared.producer
    # Retry and dead-letter copies are never suppressed: losing them would lose the message.
    producer._producer.produce(topic, value, key=key, headers=headers, on_delivery=on_delivery)
    deadline = time.monotonic() + float(settings.DELIVERY_TIMEOUT)
    while "msg" not in report:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DjangoKafkaError(
                f"no delivery report for a message to {topic!r} within "
                f"{settings.DELIVERY_TIMEOUT}s; the original offset is not stored."
            )
        producer.flush(min(remaining, 1.0))
    if report["error"] is not None:
        raise DjangoKafkaError(f"delivery to {topic!r} failed: {report['error']}")
    msg = report["msg"]
    return msg.partition(), msg.offset()
