"""Registries behind ``@kafka.consumers()`` and ``@kafka.connectors()``."""

from __future__ import annotations

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.keyed import Registry, T
from django_messaging.kafka.retry.consumer import RetryConsumer

__all__ = ["ConnectorsRegistry", "ConsumersRegistry", "Registry"]


class ConsumersRegistry(Registry[T]):
    """Consumers by ``module.ClassName``; a consumer with non-blocking retry topics also
    registers its generated retry consumer as ``module.ClassName.retry``."""

    def register(self, cls: T) -> str:
        key = super().register(cls)
        retry_cls = RetryConsumer.build(cls)  # type: ignore[arg-type]
        if retry_cls is not None:
            retry_key = f"{key}.retry"
            if retry_key in self._classes:
                raise DjangoKafkaError(f"{retry_key!r} is already registered.", context=cls)
            self._classes[retry_key] = retry_cls  # type: ignore[assignment]
        return key

    def unregister(self, key: str) -> None:
        super().unregister(key)
        super().unregister(f"{key}.retry")


class ConnectorsRegistry(Registry[T]):
    """Connectors are keyed by their (prefixed) connector name, as Kafka Connect knows them."""

    def get_key(self, cls: T) -> str:
        return str(cls.name)  # type: ignore[attr-defined]
