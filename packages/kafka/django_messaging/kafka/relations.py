"""The relations resolver: park a message until the rows it refers to exist.

A topic consumer declares what a message needs with ``get_relations(msg)``, yielding
:class:`ModelRelation` ``(model, field, value)`` tuples. Before its handler runs, a message
of such a topic is *parked* in :class:`~django_messaging.kafka.models.WaitingMessage` (and its
offset stored, so the consumer moves on) when

- one of its relations does not exist yet (a ``None`` value is not checked), or
- an earlier message with the same key is waiting: it queues behind it, in offset order.

A tombstone (``value() is None``) is never parked: it marks the messages waiting for its key
``discarded`` and goes to its handler at once.

:func:`resolve` replays waiting messages, per key in offset order, once their relations
exist: through the consumer's own :meth:`process_message`, so a replayed message that fails
takes the topic's retry and dead-letter policy, and an idempotent topic records it in its inbox.
The handler's transaction and the ``replayed`` mark commit together. A replay that asks for a
blocking retry leaves the message waiting (and the rest of its key behind it) for the next run.
``./manage.py kafka_resolve_relations`` runs :class:`RelationResolver` in a loop.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from django.apps import apps
from django.db import models, transaction
from django.utils import timezone

from django_messaging.core.worker import Worker
from django_messaging.kafka.utils.message import Message

if TYPE_CHECKING:
    from django_messaging.kafka.models import WaitingMessage

__all__ = ["ModelRelation", "ParkedMessage", "RelationResolver", "park_if_waiting", "resolve"]

logger = logging.getLogger(__name__)


class ModelRelation(NamedTuple):
    """A row a message needs: ``model.objects.filter(**{field: value}).exists()``."""

    model: type[models.Model]
    field: str
    value: Any


def consumer_key(consumer: Any) -> str:
    cls = type(consumer)
    return f"{cls.__module__}.{cls.__name__}"


def key_digest(key: bytes | str | None) -> str:
    if key is None:
        return ""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    return hashlib.sha256(raw).hexdigest()


def declares_relations(topic: Any) -> bool:
    return callable(getattr(topic, "get_relations", None))


class ParkedMessage:
    """A waiting row as a consumed message (topic, partition, offset, key, value, headers)."""

    def __init__(self, row: WaitingMessage) -> None:
        self.row = row
        self._headers = [(name, bytes.fromhex(value)) for name, value in row.headers] or None

    def topic(self) -> str:
        return str(self.row.topic)

    def partition(self) -> int:
        return int(self.row.partition)

    def offset(self) -> int:
        return int(self.row.offset)

    def key(self) -> bytes | None:
        return None if self.row.key is None else bytes(self.row.key)

    def value(self) -> bytes | None:
        return None if self.row.value is None else bytes(self.row.value)

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self.row.timestamp is None else (1, int(self.row.timestamp))

    def error(self) -> None:
        return None

    def __len__(self) -> int:
        value = self.value()
        return 0 if value is None else len(value)

    def __repr__(self) -> str:
        return f"<ParkedMessage {self.row}>"


def _as_stored(relation: Any) -> list[Any]:
    model, field, value = relation
    if value is not None and not isinstance(value, (str, int, float, bool)):
        value = str(value)  # UUID, Decimal, ...: the lookup takes their text
    return [model._meta.label, field, value]


def _missing(stored: Iterable[list[Any]]) -> list[list[Any]]:
    missing = []
    for label, field, value in stored:
        if value is None:
            continue
        model = apps.get_model(label)
        if not model._default_manager.filter(**{field: value}).exists():
            missing.append([label, field, value])
    return missing


def _waiting() -> type[WaitingMessage]:
    from django_messaging.kafka.models import WaitingMessage  # not at import: apps load later

    return WaitingMessage


def park_if_waiting(consumer: Any, topic: Any, msg: Message) -> bool:
    """``True`` when ``msg`` was parked (its handler must not run now). A replayed message
    (:class:`ParkedMessage`) is never parked again."""
    WaitingMessage = _waiting()
    if isinstance(msg, ParkedMessage):
        return False
    owner = consumer_key(consumer)
    digest = key_digest(msg.key())
    queue = WaitingMessage.objects.filter(
        status=WaitingMessage.WAITING, consumer=owner, topic=msg.topic(), key_digest=digest
    )
    if msg.value() is None:
        if digest:
            discarded = queue.update(status=WaitingMessage.DISCARDED, updated_at=timezone.now())
            if discarded:
                logger.info(
                    "%s: tombstone %s [%d] @%d discarded %d waiting message(s) of its key",
                    owner,
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    discarded,
                )
        return False
    stored = [_as_stored(r) for r in topic.get_relations(msg)]
    missing = _missing(stored)
    if not missing and not (digest and queue.exists()):
        return False
    ts_type, ts = msg.timestamp()
    WaitingMessage.objects.bulk_create(
        [
            WaitingMessage(
                consumer=owner,
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                key_digest=digest,
                key=msg.key(),
                value=msg.value(),
                headers=[[n, bytes(v or b"").hex()] for n, v in (msg.headers() or [])],
                timestamp=ts if ts_type else None,
                relations=stored,
            )
        ],
        ignore_conflicts=True,  # parked before by a process that died before storing the offset
    )
    logger.info(
        "%s: %s [%d] @%d parked: %s",
        owner,
        msg.topic(),
        msg.partition(),
        msg.offset(),
        f"missing {missing}" if missing else "an earlier message of its key is waiting",
    )
    return True


def resolve(consumer: Any, limit: int = 500, ids: Iterable[int] | None = None) -> int:
    """Replay the waiting messages of ``consumer`` whose relations exist, each key in offset
    order, at most ``limit``; ``ids``: only these rows (and only when no earlier row of their
    key waits). Returns how many were replayed (handled, retried elsewhere or dead-lettered)."""
    WaitingMessage = _waiting()
    rows = WaitingMessage.objects.filter(
        status=WaitingMessage.WAITING, consumer=consumer_key(consumer)
    ).order_by("topic", "key_digest", "partition", "offset")
    wanted = None if ids is None else set(ids)
    replayed = 0
    blocked: set[tuple[str, str]] = set()
    for row in rows.iterator(chunk_size=limit):
        if replayed >= limit:
            break
        queue = (row.topic, row.key_digest or f"#{row.pk}")  # no key: no queue
        if queue in blocked:
            continue
        if (wanted is not None and row.pk not in wanted) or _missing(row.relations):
            blocked.add(queue)
            continue
        if _replay(consumer, row):
            replayed += 1
        else:
            blocked.add(queue)
    return replayed


def _replay(consumer: Any, row: WaitingMessage) -> bool:
    WaitingMessage = _waiting()
    held: list[float] = []
    consumer.pause_partition = lambda msg, seconds: held.append(seconds)  # retry next run
    try:
        with transaction.atomic():
            locked = (
                WaitingMessage.objects.select_for_update(skip_locked=True)
                .filter(pk=row.pk, status=WaitingMessage.WAITING)
                .first()
            )
            if locked is None:
                return False  # replayed or discarded meanwhile, or held by another resolver
            if not consumer.process_message(ParkedMessage(locked)) or held:
                transaction.set_rollback(True)
                return False
            locked.status = WaitingMessage.REPLAYED
            locked.updated_at = timezone.now()
            locked.save(update_fields=["status", "updated_at"])
    except Exception:
        logger.exception("%s: replay of %s failed; it stays waiting", consumer.name, row)
        return False
    finally:
        del consumer.pause_partition
    logger.info("%s: replayed %s", consumer.name, row)
    return True


class RelationResolver(Worker):
    """Replays the waiting messages of ``consumer_classes`` every ``interval`` seconds."""

    def __init__(self, consumer_classes: list[type], interval: float = 1.0, limit: int = 500):
        self.consumer_classes = consumer_classes
        self.interval = interval
        self.limit = limit
        self.name = "kafka_resolve_relations"
        self._consumers: list[Any] = []
        self._replayed = 0
        self._next = 0.0

    def start(self) -> None:
        self._consumers = [cls() for cls in self.consumer_classes]

    def run_once(self) -> None:
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.5))
            return
        for consumer in self._consumers:
            self._replayed += resolve(consumer, self.limit)
        self._next = time.monotonic() + self.interval

    def stop(self) -> None:
        for consumer in self._consumers:
            consumer.stop()

    def messages_handled(self) -> int:
        return self._replayed
