"""Serializers that adapt django-messaging's named serializers to confluent-kafka's interface."""

from __future__ import annotations

from typing import Any

from confluent_kafka.serialization import Deserializer, SerializationContext, Serializer

from django_messaging.core.serializers import get_serializer


class NoOpSerializer(Serializer):
    """Bytes in, the same bytes out (re-producing raw messages to retry and dead letter topics)."""

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> Any:
        return obj


class NamedSerializer(Serializer):
    """A serializer of the core registry by name: ``NamedSerializer("json")``. ``None`` stays
    ``None`` (a tombstone)."""

    def __init__(self, name: str = "json") -> None:
        self.name = name
        self._dumps = get_serializer(name).dumps

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> bytes | None:
        return None if obj is None else self._dumps(obj)

    def dumps_value(self, obj: Any) -> bytes | None:
        """The same without a context (the produce path skips building one)."""
        return None if obj is None else self._dumps(obj)


class NamedDeserializer(Deserializer):
    """The reverse of :class:`NamedSerializer`."""

    def __init__(self, name: str = "json") -> None:
        self.name = name
        self._loads = get_serializer(name).loads

    def __call__(self, value: bytes | None, ctx: SerializationContext | None = None) -> Any:
        return None if value is None else self._loads(value)


class JSONSerializer(NamedSerializer):
    def __init__(self) -> None:
        super().__init__("json")


class JSONDeserializer(NamedDeserializer):
    def __init__(self) -> None:
        super().__init__("json")
