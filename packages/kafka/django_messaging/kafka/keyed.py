"""Classes by key: the base of the Kafka package's registries (consumers, connectors, model
syncs). A leaf module, so that any of them can build on it without an import cycle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from django_messaging.kafka.exceptions import DjangoKafkaError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by key (default: ``module.ClassName``). Duplicate and unknown keys raise."""

    def __init__(self) -> None:
        self._classes: dict[str, T] = {}

    def __call__(self, cls: T | None = None) -> Any:
        """``@kafka.consumers()`` (or ``@kafka.consumers``): register the decorated class and
        return it unchanged."""
        if cls is not None:
            self.register(cls)
            return cls

        def decorator(cls: T) -> T:
            self.register(cls)
            return cls

        return decorator

    def get_key(self, cls: T) -> str:
        return f"{cls.__module__}.{cls.__name__}"

    def register(self, cls: T) -> str:
        key = self.get_key(cls)
        if key in self._classes:
            raise DjangoKafkaError(f"{key!r} is already registered.", context=cls)
        self._classes[key] = cls
        return key

    def unregister(self, key: str) -> None:
        self._classes.pop(key, None)

    def __getitem__(self, key: str) -> T:
        try:
            return self._classes[key]
        except KeyError:
            known = ", ".join(self._classes) or "none"
            raise DjangoKafkaError(f"{key!r} is not registered (registered: {known}).") from None

    def __contains__(self, key: object) -> bool:
        return key in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._classes))

    def __len__(self) -> int:
        return len(self._classes)
