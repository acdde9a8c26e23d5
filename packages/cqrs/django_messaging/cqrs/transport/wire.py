"""The wire format shared with django-cqrs: payload ⇄ AMQP routing key, properties and body.

Topology (the names django-cqrs uses, so both libraries can share a broker):

- one durable topic exchange (``exchange``, default ``cqrs``);
- per replica service a durable queue ``queue`` bound with ``<CQRS_ID>`` (broadcasts) and
  ``cqrs.<queue>.<CQRS_ID>`` (direct syncs), and its dead letter queue ``dead_letter_<queue>``
  bound with ``cqrs.dead_letter_<queue>.<CQRS_ID>``;
- additionally, per retry delay, a queue ``<queue>.delay.<ms>`` with ``x-message-ttl`` whose
  expired messages the broker moves back into ``queue``: a failed message waits in the broker,
  never unacknowledged in a worker's memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.conf import dead_letter_queue, settings
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.dataclasses import TransportPayload

if TYPE_CHECKING:
    import pika

CONTENT_TYPE = "text/plain"
#: The replica queue of a direct SYNC sent through the default exchange (retries, dead letters).
QUEUE_HEADER = "x-cqrs-queue"
#: Why a message was retried or dead-lettered.
ERROR_HEADER = "x-cqrs-error"


class Delivery(NamedTuple):
    """A received message, whatever the client library."""

    routing_key: str
    headers: dict[str, Any]
    body: bytes
    tag: Any


def routing_key(payload: TransportPayload) -> str:
    if payload.is_dead_letter:
        return f"cqrs.{dead_letter_queue()}.{payload.cqrs_id}"
    if payload.is_requeue:
        return f"cqrs.{settings.QUEUE}.{payload.cqrs_id}"
    if payload.signal_type is SignalType.SYNC and payload.queue:
        return f"cqrs.{payload.queue}.{payload.cqrs_id}"
    return payload.cqrs_id


def encode(payload: TransportPayload) -> bytes:
    return payload.body()


def decode(delivery: Delivery) -> TransportPayload:
    """The payload of a received message; a direct SYNC gets this service's queue back from the
    routing key (or the header of a retry). Raises on anything malformed."""
    data = get_serializer("json").loads(delivery.body)
    queue = settings.QUEUE
    direct = delivery.routing_key.startswith(f"cqrs.{queue}.") or (
        delivery.headers.get(QUEUE_HEADER) == queue
    )
    return TransportPayload.from_message(data, queue if direct else None)


def properties(**extra: Any) -> pika.BasicProperties:
    import pika  # the RabbitMQ transports' client; the Kafka transport reads this module too

    return pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=2, **extra)


def delay_queue_arguments(milliseconds: int) -> dict[str, Any]:
    """A queue whose messages the broker moves back into the service queue after the TTL."""
    return {
        "x-message-ttl": milliseconds,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": settings.QUEUE,
    }


def failure_headers(reason: str, queue: str | None) -> dict[str, Any]:
    headers = {ERROR_HEADER: reason[:500]}
    if queue:  # a direct SYNC stays direct when it is retried or sent back from the dead letters
        headers[QUEUE_HEADER] = queue
    return headers
