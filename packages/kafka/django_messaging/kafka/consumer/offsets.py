"""Offset bookkeeping of one consumer: what was handled is stored, and committed.

An offset is stored only after the messages its handlers produced were delivered, so a crash
cannot lose them; librdkafka commits stored offsets in the background and at each rebalance,
:meth:`OffsetBook.commit` does it synchronously (on stop, or after every batch when
``enable.auto.commit`` is off).
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from django_messaging.kafka.clients import shared
from django_messaging.kafka.conf import settings
from django_messaging.kafka.exceptions import DjangoKafkaError

logger = logging.getLogger(__name__)

#: The offset of the last handled message of each (topic, partition).
Done = dict[tuple[str, int], int]


class OffsetBook:
    """Stores and commits the offsets of one consumer (``name`` is for log lines).

    The librdkafka client is passed to each call rather than kept: the consumer owns it.
    """

    def __init__(self, name: str, commit_each_batch: bool) -> None:
        self.name = name
        self.commit_each_batch = commit_each_batch
        #: offsets were stored since the last commit
        self.stored = False

    def store(self, client: Any, done: Done) -> None:
        """Store the offset after each (topic, partition)'s last handled message."""
        flush_produced()
        try:
            client.store_offsets(
                offsets=[TopicPartition(t, p, offset + 1) for (t, p), offset in done.items()]
            )
        except KafkaException as exc:
            # Only raised when none of the partitions is assigned any more (a rebalance took
            # them): their next owner starts at the committed offset and handles them again.
            if exc.args[0].code() not in (KafkaError._STATE, KafkaError._UNKNOWN_PARTITION):
                raise
            logger.warning(
                "%s: offsets of revoked partitions not stored (%s): %s",
                self.name,
                exc.args[0].str(),
                ", ".join(f"{t}[{p}]@{o}" for (t, p), o in done.items()),
            )
            return
        self.stored = True
        if self.commit_each_batch:
            self.commit(client)

    def commit(self, client: Any) -> None:
        """Commit the stored offsets now; nothing to commit is fine."""
        try:
            client.commit(asynchronous=False)
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError._NO_OFFSET:
                return
            raise
        self.stored = False

    def close(self, client: Any) -> None:
        """Deliver what was produced and commit what was stored (the consumer stops)."""
        flush_produced()
        if self.stored:
            self.commit(client)


def flush_produced() -> None:
    """Deliver the messages the handlers produced before the offsets that caused them are
    stored, so a crash cannot lose them."""
    producer = shared.built_producer
    if producer is not None and len(producer._producer):
        remaining = producer._producer.flush(float(settings.DELIVERY_TIMEOUT))
        if remaining:
            raise DjangoKafkaError(
                f"{remaining} produced message(s) not delivered within "
                f"{settings.DELIVERY_TIMEOUT}s; the consumed offsets are not stored."
            )
