"""``Consumer``: subscribes to its ``Topics`` and hands every message to its topic.

It is a :class:`django_messaging.core.worker.Worker`: ``kafka_consume`` runs each registered
consumer in its own process under the core supervisor (SIGTERM: finish the batch, commit,
leave the group, exit 0; a crashed consumer is restarted).

Delivery guarantees: a message's offset is stored only after its topic handled it (and its
database transaction committed), or after its retry or dead-letter copy was acknowledged by the
broker. Offsets are stored by the library whatever ``enable.auto.offset.store`` says, and
committed by librdkafka's auto-commit, at every rebalance and synchronously on stop.

This module is the loop: batches, dispatch to topics, held messages of paused partitions.
What happens to a message that failed is in :mod:`.failures`, storing and committing offsets
in :mod:`.offsets`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import time
from typing import Any, ClassVar

from confluent_kafka import KafkaError, TopicPartition
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from django_messaging.core import metrics, tracing
from django_messaging.core.worker import Worker, run_worker
from django_messaging.kafka import relations
from django_messaging.kafka.clients import shared
from django_messaging.kafka.conf import settings
from django_messaging.kafka.config import consumer_config
from django_messaging.kafka.consumer import inbox
from django_messaging.kafka.consumer.batch_transaction import BatchAborted, BatchTransactions
from django_messaging.kafka.consumer.failures import TRANSIENT_ERRORS, FailurePolicy
from django_messaging.kafka.consumer.managers import PauseManager, RetryManager
from django_messaging.kafka.consumer.offsets import Done, OffsetBook
from django_messaging.kafka.consumer.topics import Topics
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic import TopicConsumer
from django_messaging.kafka.utils.message import Message

__all__ = ["TRANSIENT_ERRORS", "Consumer"]

logger = logging.getLogger(__name__)

_NOT_ATOMIC: Any = object()
_topic = operator.methodcaller("topic")


class Consumer(FailurePolicy, Worker):
    """Consumes ``topics`` with the librdkafka ``config`` of the class.

    Config precedence: ``client.id`` < ``GLOBAL_CONFIG`` < ``CONSUMER_CONFIG`` <
    ``logger``/``error_cb`` < ``config``. Other attributes are proxied to the
    ``confluent_kafka.Consumer``.
    """

    topics: ClassVar[Topics] = Topics()
    config: ClassVar[dict[str, Any]] = {}
    #: seconds ``consume()`` waits for messages; ``None``: the ``POLLING_FREQUENCY`` setting.
    polling_freq: ClassVar[float | None] = None
    #: most messages per batch; ``None``: the ``BATCH_SIZE`` setting.
    batch_size: ClassVar[int | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "topics" not in cls.__dict__:
            # its own view: the ModelSync sinks of the parent class do not run on it
            cls.topics = cls.topics.bound_to(cls)

    def __init__(self) -> None:
        self.config = self.build_config()  # type: ignore[misc]  # the built config
        self._consumer = shared.consumer_client(self.config)
        self._pauses = PauseManager()
        #: messages of paused partitions, from the one to retry on, in offset order
        self._backlog: dict[tuple[str, int], list[Message]] = {}
        self._retries = RetryManager()
        self._partitions: dict[str, int] = {}
        self._handlers: dict[str, tuple[TopicConsumer, bool, Any, Any, Any]] = {}
        self.name = type(self).__name__
        self._handled = 0
        self._inbox_headers: tuple[str, ...] = ()
        self._offsets = OffsetBook(
            self.name, commit_each_batch=not self.config.get("enable.auto.commit", True)
        )

    # --- configuration --------------------------------------------------------------------

    @classmethod
    def build_config(cls) -> dict[str, Any]:
        config = consumer_config(cls.config)
        # Offsets are stored by the library after each message was handled, never by librdkafka
        # when it hands the message out (django-kafka crashed without this key).
        config["enable.auto.offset.store"] = False
        return config

    @property
    def group_id(self) -> str:
        group = self.config.get("group.id")
        if not group:
            raise DjangoKafkaError(f"{type(self).__name__}: no group.id in its config or settings.")
        return str(group)

    def get_polling_freq(self) -> float:
        return float(
            self.polling_freq if self.polling_freq is not None else settings.POLLING_FREQUENCY
        )

    def get_batch_size(self) -> int:
        return int(self.batch_size if self.batch_size is not None else settings.BATCH_SIZE)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_consumer":
            raise AttributeError(name)
        return getattr(self._consumer, name)

    # --- lifecycle (Worker) ---------------------------------------------------------------

    def run(self) -> None:
        """Consume in this process until SIGTERM/SIGINT (django-kafka's ``Consumer.run``)."""
        run_worker(self)

    def start(self) -> None:
        self.subscribe(self.topics.names)

    def subscribe(self, topics: list[str]) -> None:
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def stop(self) -> None:
        try:
            self._offsets.close(self._consumer)
        finally:
            self._consumer.close()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.info("%s assigned %s", self.name, _tps(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.info("%s revoked %s", self.name, _tps(partitions))
        tps = [(p.topic, p.partition) for p in partitions]
        paused = [TopicPartition(t, p) for t, p in tps if (t, p) in self._pauses]
        if paused:
            # librdkafka keeps a partition's pause flag; clear it so that a later assignment
            # of the same partition is fetched. Its held messages are dropped unstored: the
            # next owner starts again at the committed offset.
            try:
                self._consumer.resume(paused)
            except Exception:
                logger.debug("resume of revoked partitions failed", exc_info=True)
        self._pauses.discard(tps)
        self._retries.discard(tps)
        for tp in tps:
            self._backlog.pop(tp, None)

    # --- the loop -------------------------------------------------------------------------

    def run_once(self) -> None:
        """Take one batch, handle it, store the offsets of what was handled."""
        done: Done = {}
        if self._pauses:
            self._retry_due(done)
            if done:
                # before consume(): a rebalance it serves may revoke these partitions, and
                # offsets cannot be stored for partitions this member no longer owns.
                self._store(done)
                done = {}
        timeout = self.get_polling_freq()
        due = self._pauses.next_due()
        if due is not None:
            timeout = max(0.0, min(timeout, due - time.monotonic()))
        msgs = self._consumer.consume(self.get_batch_size(), timeout)
        if msgs:
            self._handled += len(msgs)
            started = time.perf_counter()
            self.process_batch(msgs, done)
            if metrics.enabled:
                metrics.consumed_batch("kafka", map(_topic, msgs), started)

    def messages_handled(self) -> int:
        """Messages taken from the broker since the start (a retried one counts once per try)."""
        return self._handled

    def _retry_due(self, done: Done) -> None:
        """Handle the held messages of partitions whose pause is over; resume the partitions
        whose held messages are all handled."""
        for tp, _pause in self._pauses.pop_ready():
            held = self._backlog.pop(tp, [])
            for index, msg in enumerate(held):
                if self.process_message(msg):
                    done[tp] = msg.offset()
                else:
                    self._backlog[tp] = held[index:]
                    break
            else:
                self._consumer.resume([TopicPartition(tp[0], tp[1])])

    def process_batch(self, msgs: list[Message], done: Done | None = None) -> None:
        """Handle messages in order; store the offset after the last handled message of each
        partition. A partition paused for a retry keeps its later messages in the backlog.

        Messages of ``atomic`` topics share one transaction per batch and database, with a
        savepoint per message (:mod:`.batch_transaction`); their offsets are stored after it
        committed. A transaction that is full is committed and the batch goes on in a new one.
        When it breaks, its messages are rolled back and handled again one by one.
        """
        done = {} if done is None else done
        self._handlers.clear()  # topics' settings (atomic, bulk) are read once per batch
        bulk: dict[int, list[Message]] = {}
        start = 0
        while start < len(msgs):
            start = self._in_transactions(msgs, start, done, bulk)
            if done and start < len(msgs):
                self._store(done)  # what the transaction that filled up covered
        if bulk:
            for group in bulk.values():
                self._process_bulk(group, done)
        if done:
            if self._retries:
                for tp in done:
                    if tp not in self._backlog:
                        self._retries.done(*tp)
            self._store(done)

    def _in_transactions(
        self, msgs: list[Message], start: int, done: Done, bulk: dict[int, list[Message]]
    ) -> int:
        """Handle ``msgs[start:]`` in new batch transactions until one of them is full; commit
        them. Returns the index of the first message not handled yet."""
        stored_before = dict(done)
        backlog_before = set(self._backlog)
        txs = BatchTransactions()
        stop, failure = self._dispatch(msgs, start, done, bulk, txs)
        if failure is None:
            if not txs.partitions:
                return stop
            try:
                txs.commit()
            except Exception as exc:
                failure = exc
            else:
                return stop
        txs.rollback()
        self._undo_batch(txs.partitions, backlog_before, stored_before, done)
        logger.warning(
            "%s: the transaction of a batch of %d messages failed (%r); handling them one by one",
            self.name,
            stop - start,
            failure,
        )
        redo = [m for m in msgs[start:stop] if (m.topic(), m.partition()) in txs.partitions]
        self._dispatch(redo + msgs[stop:], 0, done, bulk, None)
        return len(msgs)

    def _dispatch(
        self,
        msgs: list[Message],
        start: int,
        done: Done,
        bulk: dict[int, list[Message]],
        txs: BatchTransactions | None,
    ) -> tuple[int, Exception | None]:
        """Hand each message from ``msgs[start]`` on to its topic. With ``txs``, atomic topics
        run in the batch's transactions: returns the index at which they broke and the error,
        or the index after the message that filled one of them; else ``(len(msgs), None)``."""
        backlog = self._backlog
        handlers = self._handlers
        partitions = txs.partitions if txs is not None else None
        tx: Any = None
        tx_using: Any = _NOT_ATOMIC
        for index, msg in enumerate(msgs[start:] if start else msgs, start):
            if msg.error() is not None:
                self._log_message_error(msg)
                continue
            topic_name = msg.topic()
            entry = handlers.get(topic_name) or self._handler(topic_name)
            tp = (topic_name, msg.partition())
            if backlog and tp in backlog:
                backlog[tp].append(msg)
                continue
            call = entry[2]
            if call is None:
                if entry[1]:
                    bulk.setdefault(id(entry[0]), []).append(msg)
                    continue
                if self.process_message(msg):
                    done[tp] = msg.offset()
                else:
                    backlog[tp] = [msg]
                continue
            using = entry[3]
            try:
                if using is _NOT_ATOMIC:
                    call(msg)
                elif partitions is None:
                    with transaction.atomic(using=using):
                        call(msg)
                else:
                    if using is not tx_using:
                        tx = txs.get(using)  # type: ignore[union-attr]
                        tx_using = using
                    partitions.add(tp)
                    direct = entry[4]
                    if direct is None:
                        full = tx.call(call, msg)
                    else:  # idempotent: ids recorded ahead, one statement for many messages
                        msg_id = inbox.message_id(msg, self._inbox_headers)
                        ahead = inbox.Ahead.of(tx, self.group_id)
                        coming = functools.partial(self._coming_ids, msgs, index, entry)
                        if ahead.take(msg_id, coming):
                            full = tx.call(direct, msg, functools.partial(ahead.give_back, msg_id))
                        else:
                            inbox.skipped(self.group_id, msg, msg_id)
                            full = False
                    if full:  # the transaction is full
                        done[tp] = msg.offset()
                        return index + 1, None
            except BatchAborted as exc:
                return index, exc
            except Exception as exc:
                if partitions is not None and using is not _NOT_ATOMIC and self.is_transient(exc):
                    return index, exc
                if not self.handle_exception(msg, exc):
                    backlog[tp] = [msg]
                    continue
            done[tp] = msg.offset()
        return len(msgs), None

    def _coming_ids(self, msgs: list[Message], index: int, entry: tuple[Any, ...]) -> list[str]:
        """The ids of the idempotent messages from ``msgs[index]`` on that the batch's
        transaction of ``entry``'s database may handle next (at most ``inbox.AHEAD``)."""
        found = []
        handlers = self._handlers
        backlog = self._backlog
        headers = self._inbox_headers
        for msg in msgs[index : index + inbox.AHEAD]:
            if msg.error() is not None:
                continue
            topic_name = msg.topic()
            other = handlers.get(topic_name) or self._handler(topic_name)
            if other[4] is None or other[3] != entry[3]:
                continue
            if backlog and (topic_name, msg.partition()) in backlog:
                continue
            found.append(inbox.message_id(msg, headers))
        return found

    def _undo_batch(
        self,
        partitions: set[tuple[str, int]],
        backlog_before: set[tuple[str, int]],
        stored_before: Done,
        done: Done,
    ) -> None:
        """Forget what the rolled-back batch did to ``partitions``: their offsets to store,
        and the pauses and held messages of failures inside it."""
        resume = []
        for tp in partitions:
            if tp in stored_before:
                done[tp] = stored_before[tp]
            else:
                done.pop(tp, None)
            if tp in self._backlog and tp not in backlog_before:
                del self._backlog[tp]
                if tp in self._pauses:
                    resume.append(TopicPartition(*tp))
                self._pauses.discard([tp])
                self._retries.discard([tp])
        if resume:
            self._consumer.resume(resume)

    def _handler(self, topic_name: str) -> tuple[TopicConsumer, bool, Any, Any, Any]:
        """(topic consumer, takes batches?, direct callable or None, database alias of its
        transaction or ``_NOT_ATOMIC``, the direct callable without its inbox record for an
        idempotent topic whose batch transactions record ids ahead, else ``None``) of a topic
        name.

        The direct callable skips :meth:`process_message`/:meth:`consume` when a subclass
        did not override them; unknown topics and batch topics get ``None``.
        """
        try:
            topic = self.get_topic_by_name(topic_name)
        except DjangoKafkaError:
            return (None, False, None, _NOT_ATOMIC, None)  # type: ignore[return-value]
        # a topic with relations goes through consume(), where the resolver may park a message
        parks = relations.declares_relations(topic)
        batch = bool(getattr(topic, "bulk", False)) and hasattr(topic, "consume_batch")
        batch = batch and not parks
        call: Any = None
        cls = type(self)
        if (
            not batch
            and not parks
            and cls.consume is Consumer.consume
            and cls.process_message is Consumer.process_message
            and cls.get_topic is Consumer.get_topic
        ):
            call = topic.consume
        using = topic.atomic_using if self._is_atomic(topic) else _NOT_ATOMIC
        ahead: Any = None
        if call is not None and self._is_idempotent(topic):
            connection = connections[topic.atomic_using or DEFAULT_DB_ALIAS]
            if inbox.Ahead.supported(connection):
                ahead = self._traced(call) if tracing.enabled else call
            self._inbox_headers = tuple(settings.INBOX_ID_HEADERS)
            call = inbox.idempotent(call, self.group_id, topic.atomic_using)
        if call is not None and tracing.enabled:
            call = self._traced(call)
        entry = (topic, batch, call, using, ahead)
        self._handlers[topic_name] = entry
        return entry

    def _process_bulk(self, msgs: list[Message], done: Done) -> None:
        topic = self.get_topic(msgs[0])
        try:
            with self._atomic(topic):
                topic.consume_batch(msgs)  # type: ignore[attr-defined]
        except Exception as exc:
            logger.info(
                "%s: batch of %d messages of %s failed (%s); handling them one by one",
                self.name,
                len(msgs),
                msgs[0].topic(),
                exc,
            )
        else:
            for msg in msgs:
                done[(msg.topic(), msg.partition())] = msg.offset()
            return
        backlog = self._backlog
        for msg in msgs:
            tp = (msg.topic(), msg.partition())
            if tp in backlog:
                backlog[tp].append(msg)
            elif self.process_message(msg):
                done[tp] = msg.offset()
            else:
                backlog[tp] = [msg]

    def _store(self, done: Done) -> None:
        self._offsets.store(self._consumer, done)

    def _log_message_error(self, msg: Message) -> None:
        error = msg.error()
        if error.code() == KafkaError._PARTITION_EOF:
            return
        logger.error(
            "%s: consume error on %s [%s]: %s", self.name, msg.topic(), msg.partition(), error
        )

    # --- one message ----------------------------------------------------------------------

    def get_topic_by_name(self, topic_name: str) -> TopicConsumer:
        return self.topics.get(topic_name)

    def get_topic(self, msg: Message) -> TopicConsumer:
        return self.get_topic_by_name(msg.topic())

    def process_message(self, msg: Message) -> bool:
        """Handle one message; ``True`` when its offset may be stored (handled, retried
        elsewhere or dead-lettered), ``False`` when its partition is paused to retry it."""
        try:
            if tracing.enabled:
                self._traced(self.consume)(msg)
            else:
                self.consume(msg)
        except Exception as exc:
            return self.handle_exception(msg, exc)
        if self._retries:
            self._retries.done(msg.topic(), msg.partition())
        return True

    def consume(self, msg: Message) -> Any:
        """Hand ``msg`` to its topic, in a transaction when the topic is ``atomic``.
        Override to wrap every message (``@producer.suppress``)."""
        if type(self).get_topic is not Consumer.get_topic:
            topic = self.get_topic(msg)  # a subclass chooses the topic per message
        else:
            topic_name = msg.topic()
            entry = self._handlers.get(topic_name) or self._handler(topic_name)
            topic = entry[0]
            if topic is None:
                topic = self.get_topic(msg)  # raises "No topic registered"
        if relations.declares_relations(topic) and relations.park_if_waiting(self, topic, msg):
            return None  # parked: its offset is stored, the resolver replays it
        if self._is_idempotent(topic):
            with transaction.atomic(using=topic.atomic_using):
                return inbox.idempotent(topic.consume, self.group_id, topic.atomic_using)(msg)
        if self._is_atomic(topic):
            with transaction.atomic(using=topic.atomic_using):
                return topic.consume(msg)
        return topic.consume(msg)

    def _traced(self, call: Any) -> Any:
        """``call(msg)`` in a ``process`` span continuing the trace of the message's headers."""
        group = self.config.get("group.id")

        def traced(msg: Message) -> Any:
            headers = msg.headers()
            # No trace to continue: no span (see core.tracing). Most messages have no headers.
            if (headers is None and not tracing.starts_new_traces) or not tracing.traced(headers):
                return call(msg)
            with tracing.process(
                "kafka",
                msg.topic(),
                headers,
                **{
                    "messaging.destination.partition.id": str(msg.partition()),
                    "messaging.kafka.offset": msg.offset(),
                    "messaging.consumer.group.name": group,
                },
            ):
                return call(msg)

        return traced

    @staticmethod
    def _is_idempotent(topic: TopicConsumer) -> bool:
        idempotent = getattr(topic, "idempotent", None)
        return bool(settings.IDEMPOTENT) if idempotent is None else bool(idempotent)

    @classmethod
    def _is_atomic(cls, topic: TopicConsumer) -> bool:
        """An idempotent topic is atomic: its record goes with the handler's writes."""
        atomic = topic.atomic
        atomic = bool(settings.ATOMIC) if atomic is None else bool(atomic)
        return atomic or cls._is_idempotent(topic)

    def _atomic(self, topic: TopicConsumer) -> Any:
        if self._is_atomic(topic):
            return transaction.atomic(using=topic.atomic_using)
        return contextlib.nullcontext()

    # --- pausing --------------------------------------------------------------------------

    def pause_partition(self, msg: Message, seconds: float) -> None:
        """Pause the partition of ``msg`` for ``seconds``; ``msg`` and the messages after it
        are held and handled in order when the pause is over (no re-fetch, no seek)."""
        self._consumer.pause([TopicPartition(msg.topic(), msg.partition())])
        self._pauses.set(msg.topic(), msg.partition(), msg.offset(), seconds)

    def resume_partitions(self) -> None:
        """Handle held messages whose time has come (``run_once`` does this)."""
        done: Done = {}
        self._retry_due(done)
        if done:
            self._store(done)


def _tps(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
