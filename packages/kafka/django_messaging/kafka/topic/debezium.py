"""``DbzModelTopicConsumer``: sync models from Debezium topics (event-flattening SMT)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic.model import ModelTopicConsumer

__all__ = ["DbzModelTopicConsumer"]


class DbzModelTopicConsumer(ModelTopicConsumer):
    """A ``ModelTopicConsumer`` for Debezium's flattened records.

    Deletion: a tombstone (``None`` value) or a ``__deleted`` field that is ``True`` or
    ``"true"``. Lookup: the model's primary key read from the message key. Rerouted topics
    (a ``__dbz__physicalTableIdentifier`` in the key) choose the model through
    ``reroute_model_map`` (``{"public.my_model": MyModel}``).
    """

    reroute_key_field_name: ClassVar[str] = "__dbz__physicalTableIdentifier"
    reroute_model_map: ClassVar[dict[str, type[models.Model]] | None] = None

    def get_model(self, key: Any, value: Any) -> type[models.Model]:
        if isinstance(key, dict) and self.reroute_key_field_name in key:
            table = key[self.reroute_key_field_name]
            if not self.reroute_model_map:
                raise DjangoKafkaError(
                    f"{type(self).__name__}: the key names table {table!r} "
                    f"({self.reroute_key_field_name}); define reroute_model_map."
                )
            try:
                return self.reroute_model_map[table]
            except KeyError:
                raise DjangoKafkaError(
                    f"{type(self).__name__}: table {table!r} is not in reroute_model_map "
                    f"({', '.join(self.reroute_model_map)})."
                ) from None
        return super().get_model(key, value)

    def is_deletion(self, model: type[models.Model], key: Any, value: Any) -> bool:
        if value is None:
            return True
        if not isinstance(value, dict):
            return False
        deleted = value.pop("__deleted", False)
        if isinstance(deleted, str):
            return deleted.strip().lower() == "true"
        return bool(deleted)

    def get_lookup_kwargs(self, model: type[models.Model], key: Any, value: Any) -> dict[str, Any]:
        pk = model._meta.pk.name  # type: ignore[union-attr]
        if not isinstance(key, dict) or pk not in key:
            raise DjangoKafkaError(
                f"{type(self).__name__}: the message key {key!r} has no {pk!r} field; Debezium "
                "keys carry the primary key (override get_lookup_kwargs otherwise)."
            )
        return {pk: key[pk]}
