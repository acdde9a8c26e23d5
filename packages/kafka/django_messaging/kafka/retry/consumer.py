"""The generated ``<Consumer>Retry`` consumer of non-blocking retry topics.

For a consumer whose topics have non-blocking retries, registration also registers
``<key>.retry``: a consumer in group ``<group>.retry`` subscribed to ``<group>.<topic>.retry.N``.
It waits until each message is due, hands it to the original topic's ``consume`` and on
failure sends it to ``retry.N+1`` or, past ``max_retries``, to ``<group>.<topic>.dlt``.
It inherits the original consumer class (and its ``config``); ``RETRY_CONSUMER_CONFIG`` is
applied on top.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from django_messaging.kafka.conf import settings
from django_messaging.kafka.config import consumer_config
from django_messaging.kafka.consumer.consumer import Consumer
from django_messaging.kafka.consumer.topics import Topics
from django_messaging.kafka.delivery import ensure_topics
from django_messaging.kafka.retry.header import RetryHeader
from django_messaging.kafka.retry.topic import (
    RetryTopicConsumer,
    parse_retry_topic,
    retry_topic_name,
)
from django_messaging.kafka.topic import TopicConsumer
from django_messaging.kafka.utils.message import Message


class RetryTopics(Topics):
    def __init__(self, group_id: str, *topic_consumers: TopicConsumer) -> None:
        self.group_id = group_id
        super().__init__(*(RetryTopicConsumer(group_id, t) for t in topic_consumers))


class RetryConsumer(Consumer):
    """Base of the generated retry consumers; see the module docstring."""

    original_consumer: ClassVar[type[Consumer]]

    @classmethod
    def build(cls, consumer_cls: type[Consumer]) -> type[RetryConsumer] | None:
        """The retry consumer class of ``consumer_cls``, or ``None`` without non-blocking topics."""
        if not consumer_cls.topics.get_retryable(blocking=False):
            return None
        return type(
            f"{consumer_cls.__name__}Retry",
            (cls, consumer_cls),
            {"original_consumer": consumer_cls, "__module__": consumer_cls.__module__},
        )

    @classmethod
    def original_group_id(cls) -> str:
        return str(cls.original_consumer.build_config()["group.id"])

    @classmethod
    def build_config(cls) -> dict[str, Any]:
        config = consumer_config(
            cls.original_consumer.config,
            settings.RETRY_CONSUMER_CONFIG,
            {"group.id": f"{cls.original_group_id()}.{settings.RETRY_TOPIC_SUFFIX}"},
        )
        config["enable.auto.offset.store"] = False
        return config

    def __init__(self) -> None:
        super().__init__()
        self._group = self.original_group_id()
        self.topics = RetryTopics(  # type: ignore[misc]
            self._group, *self.original_consumer.topics.get_retryable(blocking=False)
        )

    def start(self) -> None:
        """Subscribe to the retry topics; those known in advance are created first, so the
        subscription finds them at once (regex subscriptions find new ones on metadata refresh)."""
        names: list[str] = []
        patterns: list[str] = []
        for retry_topic in self.topics:
            original: TopicConsumer = retry_topic.topic  # type: ignore[attr-defined]
            rs = original.get_retry_settings()
            if original.is_regex() or rs is None or rs.max_retries == -1:
                patterns.append(retry_topic.name)
                continue
            wanted = [
                retry_topic_name(self._group, original.name, n)
                for n in range(1, rs.max_retries + 1)
            ]
            ensure_topics(wanted, self.num_partitions(original.name))
            names.extend(wanted)
        self.subscribe(names + patterns)

    def retry_group_id(self) -> str:
        return self._group

    def original_topic_name(self, msg: Message) -> str:
        parsed = parse_retry_topic(self._group, msg.topic())
        return parsed[0] if parsed else msg.topic()

    def current_attempt(self, msg: Message) -> int:
        parsed = parse_retry_topic(self._group, msg.topic())
        return parsed[1] if parsed else 1

    def process_message(self, msg: Message) -> bool:
        due = RetryHeader.get_retry_time(msg.headers())
        if due is not None:
            wait = due.timestamp() - time.time()
            if wait > 0:
                self.pause_partition(msg, wait)
                return False
        return super().process_message(msg)
