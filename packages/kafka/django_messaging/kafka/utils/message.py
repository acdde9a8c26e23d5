"""Reading Kafka message headers (through :mod:`django_messaging.core.headers`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_messaging.core.headers import first_header, header_values

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
        return header_values(headers, name)

    @staticmethod
    def get(headers: Any, name: str) -> Any:
        return first_header(headers, name)
