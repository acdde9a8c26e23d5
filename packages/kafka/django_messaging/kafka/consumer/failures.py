"""The failure policy of a consumer: what happens to a message whose handler raised.

- a transient error (the database is away, or one of ``transient_errors``): the partition
  waits and the message is tried again, never dead-lettered. The waits follow the one back-off
  of :mod:`django_messaging.core.reconnect`: ``transient_error_delay`` seconds, doubled on each
  further failure of the same message up to ``transient_error_max_delay``, jittered;
- blocking retries (``@kafka.retry(...)``, the default): the partition waits the configured
  delay and the message is tried again in place, up to ``max_retries``, then dead-lettered;
  the attempts ``RetrySettings.should_log`` picks (``log_every``) are logged;
- non-blocking retries (``blocking=False``): the message goes to its next retry topic, past
  ``max_retries`` to the dead letter topic;
- no retry settings: the dead letter topic at once.

Retry and dead-letter copies are confirmed by the broker before the original's offset may be
stored. :class:`FailurePolicy` is a base of ``Consumer``; its methods are the consumer's.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django import db

from django_messaging.core import metrics
from django_messaging.core.reconnect import Backoff, database_outage
from django_messaging.kafka.consumer.managers import RetryManager
from django_messaging.kafka.dead_letter.topic import DeadLetterTopicProducer
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.retry.settings import RetrySettings
from django_messaging.kafka.retry.topic import RetryTopicProducer
from django_messaging.kafka.topic import TopicConsumer
from django_messaging.kafka.utils.message import Message

logger = logging.getLogger(__name__)

#: Errors that mean "the database is not reachable right now", not "this message is bad".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (db.OperationalError, db.InterfaceError)


def should_log(attempt: int) -> bool:
    """Log retry attempts 1, 2, 4, 8, ...: bounded even for ``max_retries=-1``."""
    return attempt & (attempt - 1) == 0


class FailurePolicy:
    """Handles a message whose handler raised; see the module docstring."""

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    #: seconds a partition waits after a transient (database) error before the message is
    #: retried, doubled on each further failure of that message up to the max delay.
    transient_error_delay: ClassVar[float] = 1.0
    transient_error_max_delay: ClassVar[float] = 30.0

    # Provided by Consumer.
    name: str
    _consumer: Any
    _retries: RetryManager
    _partitions: dict[str, int]

    @property
    def group_id(self) -> str:
        raise NotImplementedError

    def get_topic(self, msg: Message) -> TopicConsumer:
        raise NotImplementedError

    def pause_partition(self, msg: Message, seconds: float) -> None:
        raise NotImplementedError

    def is_transient(self, exc: Exception) -> bool:
        """The database is away (or ``exc`` is one of ``transient_errors``): wait and retry."""
        return database_outage(exc) or isinstance(exc, self.transient_errors)

    def handle_exception(self, msg: Message, exc: Exception) -> bool:
        """``True`` when the offset of ``msg`` may be stored (retried elsewhere or
        dead-lettered), ``False`` when its partition was paused to try it again."""
        topic_name, partition, offset = msg.topic(), msg.partition(), msg.offset()
        metrics.failed("kafka", topic_name)
        outage = database_outage(exc)
        if outage or isinstance(exc, self.transient_errors):
            # Wait and retry this message; do not dead-letter it.
            db.close_old_connections()
            for conn in db.connections.all(initialized_only=True):
                conn.close_if_unusable_or_obsolete()
            attempt = self._retries.next(topic_name, partition, offset)
            delay = self.transient_backoff().delay(attempt)
            if should_log(attempt):
                logger.warning(
                    "%s: %s on %s [%d] @%d (attempt %d), retrying in %.1fs: %r",
                    self.name,
                    "database unreachable" if outage else "transient error",
                    topic_name,
                    partition,
                    offset,
                    attempt,
                    delay,
                    exc,
                )
            metrics.retried("kafka", topic_name)
            self.pause_partition(msg, delay)
            return False
        try:
            topic: TopicConsumer | None = self.get_topic(msg)
        except DjangoKafkaError:
            topic = None
        retry_settings = topic.get_retry_settings() if topic is not None else None
        if (
            retry_settings is not None
            and retry_settings.blocking
            and self.current_attempt(msg) == 0
        ):
            attempt = self._retries.next(topic_name, partition, offset)
            if retry_settings.can_retry(attempt, exc):
                delay = retry_settings.get_retry_delay(attempt)
                if retry_settings.should_log(attempt):
                    logger.warning(
                        "%s: %s [%d] @%d failed (attempt %d), retrying in %.1fs: %r",
                        self.name,
                        topic_name,
                        partition,
                        offset,
                        attempt,
                        delay,
                        exc,
                        exc_info=retry_settings.first_logged(attempt),
                    )
                metrics.retried("kafka", topic_name)
                self.pause_partition(msg, delay)
                return False
            self._retries.done(topic_name, partition)
            self.dead_letter_msg(msg, exc, attempt - 1)
            return True
        if retry_settings is not None and (
            not retry_settings.blocking or self.current_attempt(msg)
        ):
            if self.retry_msg(msg, exc, retry_settings):
                return True
            self.dead_letter_msg(msg, exc, self.current_attempt(msg))
            return True
        self.dead_letter_msg(msg, exc, 0)
        return True

    def transient_backoff(self) -> Backoff:
        """The waits between attempts at a message that failed with a transient error."""
        initial = self.transient_error_delay
        return Backoff(initial, max(initial, self.transient_error_max_delay))

    def original_topic_name(self, msg: Message) -> str:
        return msg.topic()

    def current_attempt(self, msg: Message) -> int:
        """How many times this message was retried through retry topics already."""
        return 0

    def retry_group_id(self) -> str:
        """The group id retry and dead letter topic names are built from."""
        return self.group_id

    def num_partitions(self, topic_name: str) -> int:
        count = self._partitions.get(topic_name)
        if count is None:
            try:
                metadata = self._consumer.list_topics(topic_name, timeout=5)
                count = len(metadata.topics[topic_name].partitions) or 1
            except Exception:
                count = 1
            self._partitions[topic_name] = count
        return count

    def retry_msg(self, msg: Message, exc: Exception, retry_settings: RetrySettings) -> bool:
        """Send ``msg`` to its next retry topic; ``False`` when it may not be retried."""
        original = self.original_topic_name(msg)
        producer = RetryTopicProducer(
            self.retry_group_id(), retry_settings, msg, original, self.current_attempt(msg) + 1
        )
        if not producer.retry(exc, self.num_partitions(msg.topic())):
            return False
        metrics.retried("kafka", msg.topic())
        if not retry_settings.should_log(self.current_attempt(msg) + 1):
            return True
        logger.info(
            "%s: %s [%d] @%d failed, sent to %s: %r",
            self.name,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            producer.name,
            exc,
        )
        return True

    def dead_letter_msg(self, msg: Message, exc: Exception, attempt: int = 0) -> None:
        producer = DeadLetterTopicProducer(
            self.retry_group_id(), msg, self.original_topic_name(msg)
        )
        producer.produce_for(exc, attempt, self.num_partitions(msg.topic()))
        metrics.dead_lettered("kafka", msg.topic())
        logger.error(
            "%s: %s [%d] @%d dead-lettered to %s after %d retries: %r",
            self.name,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            producer.name,
            attempt,
            exc,
            exc_info=exc,
        )
