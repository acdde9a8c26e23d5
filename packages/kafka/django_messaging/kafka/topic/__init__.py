"""Topics: how messages are serialized and produced, and how consumed messages are handled.

``Topic`` is both halves; inherit ``TopicProducer`` or ``TopicConsumer`` for one of them.
Serializers are built once per topic class (not per message) and reused.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, ClassVar

from confluent_kafka.serialization import (
    Deserializer,
    MessageField,
    SerializationContext,
    SerializationError,
    Serializer,
    StringDeserializer,
    StringSerializer,
)

from django_messaging.core.durable import DurableMessage, send_durably
from django_messaging.core.suppression import is_suppressed
from django_messaging.kafka.clients import shared
from django_messaging.kafka.conf import settings
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.retry.settings import RetrySettings
from django_messaging.kafka.serialization import NamedDeserializer, NamedSerializer
from django_messaging.kafka.utils.message import Message

__all__ = ["Topic", "TopicConsumer", "TopicProducer"]

_UNSET: Any = object()
# module constants: an Enum member lookup on every message is measurable
_KEY = MessageField.KEY
_VALUE = MessageField.VALUE


class TopicProducer(ABC):
    """Serializes and produces messages to the topic ``name``.

    ``key_serializer`` / ``value_serializer``: a confluent-kafka ``Serializer`` class, or the
    name of a django-messaging serializer (``"json"``, ``"string"``...). Default: UTF-8 strings.
    """

    key_serializer: ClassVar[type[Serializer] | str] = StringSerializer
    value_serializer: ClassVar[type[Serializer] | str] = StringSerializer
    #: ``True``: :meth:`produce` sends through the outbox, iff the transaction commits (as
    #: ``on_commit=True`` does for one call).
    durable: ClassVar[bool] = False
    #: The outbox transport of durable messages; ``None``: the ``DURABLE_TRANSPORT`` setting.
    durable_transport: ClassVar[str | None] = None

    def __init__(self) -> None:
        if self.name.startswith("^"):
            raise DjangoKafkaError(
                f"{type(self).__name__}: cannot produce to the regex topic name {self.name!r}."
            )

    @property
    @abstractmethod
    def name(self) -> str:
        """The topic name."""

    # --- serializers ----------------------------------------------------------------------

    def _make_serializer(self, factory: Any, kwargs: dict[str, Any]) -> Serializer:
        if isinstance(factory, str):
            return NamedSerializer(factory)
        return factory(**kwargs)  # type: ignore[no-any-return]

    def get_key_serializer(self, **kwargs: Any) -> Serializer:
        return self._cached_serializer("key", self.key_serializer, kwargs)

    def get_value_serializer(self, **kwargs: Any) -> Serializer:
        return self._cached_serializer("value", self.value_serializer, kwargs)

    def _serializer_cache_key(self) -> Any:
        """What else a cached serializer depends on (AvroTopic: the schema registry client)."""
        return None

    def _cached_serializer(self, field: str, factory: Any, kwargs: dict[str, Any]) -> Serializer:
        if kwargs:
            return self._make_serializer(factory, kwargs)
        cache = _cache_of(type(self))
        # The factory is part of the key: a serializer set on an instance differs from the class's.
        key = ("ser", field, factory, self._serializer_cache_key())
        found = cache.get(key)
        if found is None:
            found = cache[key] = self._make_serializer(factory, kwargs)
        return found  # type: ignore[no-any-return]

    def context(self, field: MessageField | str, headers: Any = None) -> SerializationContext:
        return SerializationContext(self.name, field, headers)  # type: ignore[arg-type]

    def serialize(
        self, value: Any, field: MessageField | str, headers: Any = None, **kwargs: Any
    ) -> Any:
        if field == MessageField.VALUE:
            serializer = self.get_value_serializer(**kwargs)
        elif field == MessageField.KEY:
            serializer = self.get_key_serializer(**kwargs)
        else:
            raise DjangoKafkaError(f"unknown message field {field!r}; use MessageField.KEY/VALUE")
        return serializer(value, self.context(field, headers))

    def produce(
        self,
        value: Any,
        key: Any = _UNSET,
        headers: Any = None,
        key_serializer_kwargs: dict[str, Any] | None = None,
        value_serializer_kwargs: dict[str, Any] | None = None,
        on_commit: bool | None = None,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Serialize ``key`` (when given) and ``value`` and produce them to this topic.

        Nothing is serialized when the topic is suppressed. Other keyword arguments go to
        ``confluent_kafka.Producer.produce`` (``partition``, ``on_delivery``, ``timestamp``...).

        ``on_commit=True`` (the default of a ``durable`` topic): the serialized record is
        written to the outbox in the current transaction of database ``using`` and relayed by
        ``./manage.py publish`` after the commit, never if it rolls back (see
        :mod:`django_messaging.core.durable`).
        """
        name = self.name
        if is_suppressed(name):
            return
        if on_commit or (on_commit is None and self.durable):
            self._produce_durably(
                value, key, headers, key_serializer_kwargs, value_serializer_kwargs, using, kwargs
            )
            return
        if key is not _UNSET:
            kwargs["key"] = self.serialize(
                key, MessageField.KEY, headers, **(key_serializer_kwargs or {})
            )
        if headers is not None:
            kwargs["headers"] = headers
        if value_serializer_kwargs or type(self).serialize is not TopicProducer.serialize:
            payload = self.serialize(
                value, MessageField.VALUE, headers, **(value_serializer_kwargs or {})
            )
        else:
            cls = type(self)
            plain = _plain_producer(cls)
            cache = _cache_of(cls)
            dumps = cache.get(("dumps", self.value_serializer)) if plain else None
            if dumps is None:
                serializer = self.get_value_serializer()
                dumps = getattr(serializer, "dumps_value", None)
                if dumps is not None and plain:  # needs no SerializationContext
                    cache[("dumps", self.value_serializer)] = dumps
            if dumps is not None:
                payload = dumps(value)
            else:
                payload = serializer(value, self.context(MessageField.VALUE, headers))
        shared.producer.send(name, payload, **kwargs)

    def _produce_durably(
        self,
        value: Any,
        key: Any,
        headers: Any,
        key_serializer_kwargs: dict[str, Any] | None,
        value_serializer_kwargs: dict[str, Any] | None,
        using: str | None,
        kwargs: dict[str, Any],
    ) -> None:
        if kwargs:
            raise DjangoKafkaError(
                f"{type(self).__name__}.produce(on_commit=True) takes no producer arguments "
                f"({', '.join(sorted(kwargs))}): the outbox relay produces the record later."
            )
        key_bytes = None
        if key is not _UNSET:
            key_bytes = _as_bytes(
                self.serialize(key, MessageField.KEY, headers, **(key_serializer_kwargs or {}))
            )
        payload = _as_bytes(
            self.serialize(value, MessageField.VALUE, headers, **(value_serializer_kwargs or {}))
        )
        transport = self.durable_transport or settings.DURABLE_TRANSPORT
        message = DurableMessage(transport, self.name, payload, key_bytes, _header_list(headers))
        send_durably([message], using)


def _as_bytes(value: Any) -> bytes | None:
    """What the producer would send for a serialized key or value (text as UTF-8)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _header_list(headers: Any) -> list[tuple[str, bytes | None]]:
    """Headers as the producer sends them: a list of (name, bytes), text values as UTF-8."""
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(str(name), _as_bytes(value)) for name, value in pairs]


_CACHES: dict[type, dict[Any, Any]] = {}


def _cache_of(cls: type) -> dict[Any, Any]:
    cache = _CACHES.get(cls)
    if cache is None:
        cache = _CACHES[cls] = {}
    return cache


@shared.on_reset
def clear_serializer_caches() -> None:
    """Forget every cached (de)serializer (settings changed)."""
    global _generation
    _CACHES.clear()
    _generation = object()


#: replaced when the caches are cleared; what an instance keeps is valid for one generation
_generation = object()
#: the fast entry of a field a class finds the deserializer of its own way: matches no factory
_NO_ENTRY = (object(), None, None, None)


class TopicConsumer(ABC):
    """Handles messages of the topic ``name``; a name starting with ``^`` is a regex
    subscription (``"^orders\\..*"``).

    ``retry_settings``: set by ``@kafka.retry(...)``; without it, ``RETRY_SETTINGS`` applies
    (read when a message fails). ``atomic``: run :meth:`consume` in ``transaction.atomic()``
    (default: the ``ATOMIC`` setting); ``atomic_using`` names the database. ``idempotent``:
    record each message's id in that transaction and skip a message recorded already
    (default: the ``IDEMPOTENT`` setting; see :mod:`django_messaging.kafka.consumer.inbox`).
    """

    key_deserializer: ClassVar[type[Deserializer] | str] = StringDeserializer
    value_deserializer: ClassVar[type[Deserializer] | str] = StringDeserializer
    retry_settings: ClassVar[RetrySettings | None] = None
    atomic: ClassVar[bool | None] = None
    atomic_using: ClassVar[str | None] = None
    idempotent: ClassVar[bool | None] = None
    #: the deserializers of the per-message path (see :meth:`_fast_deserializers`)
    _fast: tuple[Any, ...] = (None, None, None)

    @property
    @abstractmethod
    def name(self) -> str:
        """The topic name, or a regex starting with ``^``."""

    def is_regex(self) -> bool:
        return self.name.startswith("^")

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(self.name)

    def matches(self, topic_name: str) -> bool:
        if self.is_regex():
            return bool(self._pattern.search(topic_name))
        return self.name == topic_name

    def get_retry_settings(self) -> RetrySettings | None:
        """``@kafka.retry`` settings of this topic, else ``RETRY_SETTINGS``, else ``None``."""
        if self.retry_settings is not None:
            return self.retry_settings
        return RetrySettings.from_settings()

    # --- deserializers --------------------------------------------------------------------

    def _make_deserializer(self, factory: Any, kwargs: dict[str, Any]) -> Deserializer:
        if isinstance(factory, str):
            return NamedDeserializer(factory)
        return factory(**kwargs)  # type: ignore[no-any-return]

    def _deserializer_cache_key(self) -> Any:
        return None

    def _cached_deserializer(self, field: str, factory: Any, kwargs: dict[str, Any]) -> Any:
        if kwargs:
            return self._make_deserializer(factory, kwargs)
        cache = _cache_of(type(self))
        key = ("de", field, factory, self._deserializer_cache_key())
        found = cache.get(key)
        if found is None:
            found = cache[key] = self._make_deserializer(factory, kwargs)
        return found

    def get_key_deserializer(self, **kwargs: Any) -> Deserializer:
        return self._cached_deserializer("key", self.key_deserializer, kwargs)  # type: ignore[no-any-return]

    def get_value_deserializer(self, **kwargs: Any) -> Deserializer:
        return self._cached_deserializer("value", self.value_deserializer, kwargs)  # type: ignore[no-any-return]

    def context(self, field: MessageField | str, headers: Any = None) -> SerializationContext:
        return SerializationContext(self.name, field, headers)  # type: ignore[arg-type]

    def deserialize(
        self, value: Any, field: MessageField | str, headers: Any = None, **kwargs: Any
    ) -> Any:
        if not kwargs:
            # The per-message path of a consumer: the deserializers and their contexts are
            # kept on the instance until the caches are cleared (settings changed).
            fast = self._fast
            if fast[0] is not _generation:
                fast = self._fast_deserializers()
            if field is _VALUE:
                entry = fast[2]
                factory = self.value_deserializer
            elif field is _KEY:
                entry = fast[1]
                factory = self.key_deserializer
            elif field == _VALUE:  # "value"
                entry, factory, field = fast[2], self.value_deserializer, _VALUE
            elif field == _KEY:
                entry, factory, field = fast[1], self.key_deserializer, _KEY
            else:
                entry, factory = _NO_ENTRY, None
            if entry[0] is factory:
                codec = entry[1]
                if codec is not None:  # confluent-kafka's StringDeserializer, inlined
                    if value is None:
                        return None
                    try:
                        return value.decode(codec)
                    except UnicodeError as exc:
                        raise SerializationError(str(exc))  # as StringDeserializer does
                if headers is None:
                    return entry[2](value, entry[3])
                return entry[2](value, SerializationContext(self.name, field, headers))  # type: ignore[arg-type]
        if field == MessageField.VALUE:
            deserializer = self.get_value_deserializer(**kwargs)
        elif field == MessageField.KEY:
            deserializer = self.get_key_deserializer(**kwargs)
        else:
            raise DjangoKafkaError(f"unknown message field {field!r}; use MessageField.KEY/VALUE")
        return deserializer(value, self.context(field, headers))

    def _fast_deserializers(self) -> tuple[Any, ...]:
        """(generation, key entry, value entry) of this instance; an entry is (factory, codec
        of a plain ``StringDeserializer`` or ``None``, deserializer, context), ``_NO_ENTRY``
        when the class finds its deserializers its own way."""
        if not _plain_consumer(type(self)):
            fast: tuple[Any, ...] = (_generation, _NO_ENTRY, _NO_ENTRY)
        else:
            fast = (
                _generation,
                self._fast_entry("key", self.key_deserializer, _KEY),
                self._fast_entry("value", self.value_deserializer, _VALUE),
            )
        self._fast = fast
        return fast

    def _fast_entry(self, label: str, factory: Any, field: MessageField) -> tuple[Any, ...]:
        deserializer = self._cached_deserializer(label, factory, {})
        codec = getattr(deserializer, "codec", None)
        if type(deserializer) is not StringDeserializer or not isinstance(codec, str):
            codec = None
        return (factory, codec, deserializer, self.context(field))

    def consume(self, msg: Message) -> Any:
        """Handle one message. Override it; an exception sends the message to retry or the
        dead letter topic."""
        raise DjangoKafkaError(
            f"{type(self).__name__}.consume() is not implemented; define it to handle messages "
            f"of {self.name!r}."
        )


_PLAIN: dict[type, bool] = {}
_PLAIN_PRODUCER: dict[type, bool] = {}


def _plain_producer(cls: type) -> bool:
    """``cls`` finds its value serializer the way :class:`TopicProducer` does."""
    plain = _PLAIN_PRODUCER.get(cls)
    if plain is None:
        plain = _PLAIN_PRODUCER[cls] = all(
            getattr(cls, attr) is getattr(TopicProducer, attr)
            for attr in (
                "get_value_serializer",
                "_cached_serializer",
                "_serializer_cache_key",
                "_make_serializer",
            )
        )
    return plain


def _plain_consumer(cls: type) -> bool:
    """``cls`` finds its deserializers and contexts the way :class:`TopicConsumer` does."""
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = all(
            getattr(cls, attr) is getattr(TopicConsumer, attr)
            for attr in (
                "get_key_deserializer",
                "get_value_deserializer",
                "_cached_deserializer",
                "_deserializer_cache_key",
                "_make_deserializer",
                "context",
            )
        )
    return plain


class Topic(TopicConsumer, TopicProducer):
    """Produces to and consumes from the same topic ``name``."""
