"""Retry topics ``<group>.<topic>.<RETRY_TOPIC_SUFFIX>.<attempt>``: naming, producing, consuming."""

from __future__ import annotations

import re
import time
from typing import Any

from django_messaging.kafka.conf import retry_topic_suffix
from django_messaging.kafka.delivery import deliver
from django_messaging.kafka.provenance import describe_failure, provenance_headers
from django_messaging.kafka.retry.header import RetryHeader
from django_messaging.kafka.retry.settings import RetrySettings
from django_messaging.kafka.topic import TopicConsumer
from django_messaging.kafka.utils.message import Message


def retry_topic_name(group_id: str, topic: str, attempt: int) -> str:
    return f"{group_id}.{topic}.{retry_topic_suffix()}.{attempt}"


def retry_topic_regex(group_id: str, topic: TopicConsumer) -> str:
    """The subscription regex of every retry topic of ``topic`` in ``group_id``."""
    if topic.is_regex():
        inner = topic.name[1:]
        inner = inner[:-1] if inner.endswith("$") else inner
        topic_part = f"({inner})"
    else:
        topic_part = re.escape(topic.name)
    return f"^{re.escape(group_id)}\\.{topic_part}\\.{re.escape(retry_topic_suffix())}\\.([0-9]+)$"


def parse_retry_topic(group_id: str, name: str) -> tuple[str, int] | None:
    """``(original topic, attempt)`` of a retry topic name of ``group_id``, else ``None``."""
    prefix = f"{group_id}."
    suffix = f".{retry_topic_suffix()}."
    if not name.startswith(prefix):
        return None
    body, sep, number = name[len(prefix) :].rpartition(suffix)
    if not sep or not number.isdigit():
        return None
    return body, int(number)


class RetryTopicProducer:
    """Sends a failed message to the next retry topic of its original topic."""

    def __init__(
        self,
        group_id: str,
        retry_settings: RetrySettings,
        msg: Message,
        original_topic: str,
        attempt: int,
    ) -> None:
        self.group_id = group_id
        self.settings = retry_settings
        self.msg = msg
        self.original_topic = original_topic
        self.attempt = attempt

    @property
    def name(self) -> str:
        return retry_topic_name(self.group_id, self.original_topic, self.attempt)

    def retry(self, exc: BaseException, num_partitions: int = 1) -> bool:
        """Produce to the retry topic (confirmed); ``False`` when no retry is allowed."""
        if not self.settings.can_retry(self.attempt, exc):
            return False
        due = time.time() + self.settings.get_retry_delay(self.attempt)
        headers = provenance_headers(
            self.msg,
            exc,
            self.attempt,
            [
                (RetryHeader.MESSAGE, describe_failure(self.msg, exc)),
                (RetryHeader.TIMESTAMP, repr(due)),
            ],
        )
        deliver(self.name, self.msg.value(), self.msg.key(), headers, num_partitions)
        return True


class RetryTopicConsumer(TopicConsumer):
    """Consumes the retry topics of one topic, handing messages to that topic's ``consume``."""

    def __init__(self, group_id: str, topic: TopicConsumer) -> None:
        self.group_id = group_id
        self.topic = topic

    @property
    def name(self) -> str:  # type: ignore[override]
        return retry_topic_regex(self.group_id, self.topic)

    def get_retry_settings(self) -> RetrySettings | None:
        return self.topic.get_retry_settings()

    @property
    def atomic(self) -> Any:  # type: ignore[override]
        return self.topic.atomic

    def consume(self, msg: Message) -> Any:
        return self.topic.consume(msg)

    def consume_batch(self, msgs: list[Message]) -> Any:
        return self.topic.consume_batch(msgs)  # type: ignore[attr-defined]
