"""Reading Kafka message headers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # confluent-kafka's stubs make every accessor of a consumed message Optional; a message
    # handed to a topic always has its topic, partition and offset.
    Message = Any
else:
    from confluent_kafka import Message

__all__ = ["Header", "Message"]


class Header:
    """``Header.get(msg.headers(), "name")``: the first value (bytes) or ``None``;
    ``Header.list(...)``: every value of a repeated header."""

    @staticmethod
    def list(headers: Any, name: str) -> Any:
        return [value for key, value in headers or [] if key == name]

    @staticmethod
    def get(headers: Any, name: str) -> Any:
        for key, value in headers or []:
            if key == name:
                return value
        return None
