"""``TopicReproducer``: consume a topic (a Debezium change topic, say) and produce each event,
transformed and enriched, to another topic.

Each re-produced message is confirmed by the broker before the consumed message's offset may be
stored, so a crash or a broker error never loses an event (at-least-once: an event may be
re-produced twice). Tombstones (``None`` values) are re-produced as tombstones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from confluent_kafka.serialization import MessageField

from django_messaging.kafka.conf import settings
from django_messaging.kafka.delivery import deliver
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.serialization import NamedSerializer
from django_messaging.kafka.topic import TopicConsumer, _as_bytes, _header_list
from django_messaging.kafka.topic.transforms import (
    MessagePart,
    Transform,
    TransformContext,
    apply_message_transforms,
)
from django_messaging.kafka.utils.message import Message

__all__ = ["TopicReproducer"]


class TopicReproducer(TopicConsumer):
    """Re-produces the messages of ``name`` (a topic or a ``^regex``) to
    :meth:`get_reproduce_name` (``reproduce_name``, else ``"<REPRODUCER_NAMESPACE>.<topic>"``).

    ``transforms`` rewrite each value (a dict), and the key (a dict) where a step says
    ``apply_to=MessagePart.KEY`` or ``BOTH`` (a tombstone's key too); override :meth:`reproduce`
    for more, e.g. to skip an event (return ``None``). Keys and values are read and written as
    JSON unless ``key_deserializer``/``value_deserializer`` and ``key_serializer``/
    ``value_serializer`` (django-messaging serializer names) say otherwise. The consumed
    message's headers are copied.
    """

    key_deserializer: ClassVar[Any] = "json"
    value_deserializer: ClassVar[Any] = "json"
    key_serializer: ClassVar[str] = "json"
    value_serializer: ClassVar[str] = "json"
    transforms: ClassVar[Sequence[Transform]] = ()
    reproduce_name: ClassVar[str | None] = None
    copy_headers: ClassVar[bool] = True

    def get_reproduce_name(self, msg: Message) -> str:
        if self.reproduce_name:
            return self.reproduce_name
        namespace = settings.REPRODUCER_NAMESPACE
        if not namespace:
            raise DjangoKafkaError(
                f"{type(self).__name__}: set reproduce_name, or the REPRODUCER_NAMESPACE setting "
                "to re-produce to '<namespace>.<topic>'."
            )
        return f"{namespace}.{msg.topic()}"

    def reproduce(self, key: Any, value: Any, msg: Message) -> tuple[Any, Any] | None:
        """The ``(key, value)`` to produce for a consumed message, ``None`` to skip it.
        By default: the key and the value through ``transforms``, each step on its side(s)
        (of a tombstone, the key only)."""
        if not self.transforms:
            return key, value
        if value is not None and not isinstance(value, dict):
            raise DjangoKafkaError(
                f"{type(self).__name__}: transforms need a dict value, got {type(value).__name__}."
            )
        context = TransformContext(key, None, self, msg.topic())
        parts = MessagePart.KEY if value is None else MessagePart.BOTH
        return apply_message_transforms(self.transforms, key, value, context, parts)

    def serialize_key(self, key: Any, target: str) -> bytes | None:
        """The re-produced key's bytes (``key_serializer``)."""
        return _as_bytes(NamedSerializer(self.key_serializer)(key))

    def serialize_value(self, value: Any, target: str) -> bytes | None:
        """The re-produced value's bytes (``value_serializer``)."""
        return _as_bytes(NamedSerializer(self.value_serializer)(value))

    def consume(self, msg: Message) -> Any:
        headers = msg.headers()
        key = self.deserialize(msg.key(), MessageField.KEY, headers)
        value = self.deserialize(msg.value(), MessageField.VALUE, headers)
        result = self.reproduce(key, value, msg)
        if result is None:
            return None
        new_key, new_value = result
        target = self.get_reproduce_name(msg)
        key_bytes = None if new_key is None else self.serialize_key(new_key, target)
        value_bytes = None if new_value is None else self.serialize_value(new_value, target)
        return deliver(
            target, value_bytes, key_bytes, _header_list(headers) if self.copy_headers else []
        )
