"""Dead letter topics ``<group>.<topic>.<DEAD_LETTER_TOPIC_SUFFIX>``."""

from __future__ import annotations

from django_messaging.kafka.conf import dead_letter_topic_suffix
from django_messaging.kafka.dead_letter.header import DeadLetterHeader
from django_messaging.kafka.delivery import deliver
from django_messaging.kafka.provenance import (
    describe_failure,
    format_traceback,
    provenance_headers,
)
from django_messaging.kafka.utils.message import Message


def dead_letter_topic_name(group_id: str, topic: str) -> str:
    return f"{group_id}.{topic}.{dead_letter_topic_suffix()}"


class DeadLetterTopicProducer:
    """Sends a message that cannot be consumed to ``<group>.<original topic>.dlt`` with its
    original key, value and headers plus provenance headers, and waits for the broker."""

    def __init__(self, group_id: str, msg: Message, original_topic: str) -> None:
        self.group_id = group_id
        self.msg = msg
        self.original_topic = original_topic

    @property
    def name(self) -> str:
        return dead_letter_topic_name(self.group_id, self.original_topic)

    def produce_for(self, exc: BaseException, attempt: int = 0, num_partitions: int = 1) -> None:
        summary = describe_failure(self.msg, exc)
        headers = provenance_headers(
            self.msg,
            exc,
            attempt,
            [
                (DeadLetterHeader.MESSAGE, summary),
                (DeadLetterHeader.DETAIL, format_traceback(exc)),
                (DeadLetterHeader.SUMMARY, summary),
                (DeadLetterHeader.MESSAGE_TOPIC, self.msg.topic()),
                (DeadLetterHeader.MESSAGE_PARTITION, self.msg.partition()),
                (DeadLetterHeader.MESSAGE_OFFSET, self.msg.offset()),
            ],
        )
        deliver(self.name, self.msg.value(), self.msg.key(), headers, num_partitions)
