"""``@publish([Config(...)])``: write an outbox row for every ``save()`` of a model, in the same
database transaction as the save.

    @publish([Config(destination="/topic/orders", version="v1", fields=["total"])])
    class Order(models.Model): ...

The body is ``{"id": <pk>, <field>: <value>, ...}`` (all concrete fields, or ``fields``), or what
the model method named by ``serializer`` returns. Nothing is written inside ``suppress()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.python import Serializer as PythonSerializer
from django.db import models, router, transaction

from django_messaging.core.suppression import is_suppressed

M = TypeVar("M", bound=type[models.Model])

#: Set on a decorated class so that a subclass's own ``@publish`` does not wrap twice.
CONFIGS_ATTRIBUTE = "_outbox_publish_configs"


class Config(NamedTuple):
    destination: str
    fields: list[str] | None = None
    serializer: str | None = None
    version: str | None = None

    @property
    def full_destination(self) -> str:
        return f"{self.destination}.{self.version}" if self.version else self.destination


def _field_body(instance: models.Model, fields: Sequence[str] | None) -> dict[str, Any]:
    serializer = PythonSerializer()
    data = serializer.serialize([instance], fields=fields)[0]
    return {"id": data["pk"], **data["fields"]}


def build_body(instance: models.Model, config: Config) -> Any:
    if config.serializer:
        return getattr(instance, config.serializer)()
    return _field_body(instance, config.fields)


def _check(cls: type[models.Model], configs: Sequence[Config]) -> None:
    for config in configs:
        if not isinstance(config, Config):
            raise ImproperlyConfigured(f"@publish on {cls.__name__}: {config!r} is not a Config.")
        if not config.destination:
            raise ImproperlyConfigured(f"@publish on {cls.__name__}: a Config needs a destination.")
        if config.serializer and not callable(getattr(cls, config.serializer, None)):
            raise ImproperlyConfigured(
                f"@publish on {cls.__name__}: serializer {config.serializer!r} is not a method of "
                f"the model. Define {cls.__name__}.{config.serializer}(self) returning the body."
            )


def publish(configs: Sequence[Config]) -> Callable[[M], M]:
    """Class decorator: every ``save()`` also writes one ``Published`` row per config."""
    configs = list(configs)

    def decorate(cls: M) -> M:
        _check(cls, configs)
        original_save = cls.save

        @functools.wraps(original_save)
        def save(self: models.Model, *args: Any, **kwargs: Any) -> None:
            active = [
                c
                for c in configs
                if not is_suppressed(c.full_destination) and not is_suppressed(c.destination)
            ]
            if not active:
                original_save(self, *args, **kwargs)
                return
            from django_messaging.outbox.models import Published

            using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
            # No savepoint: if the outbox INSERT fails, the caller's transaction cannot commit
            # the model row without it.
            with transaction.atomic(using=using, savepoint=False):
                original_save(self, *args, **kwargs)
                rows = [
                    Published(
                        destination=c.full_destination,
                        version=c.version,
                        body=build_body(self, c),
                    )
                    for c in active
                ]
                if len(rows) == 1:
                    rows[0].save(using=using, force_insert=True)
                else:
                    Published.objects.using(using).bulk_create(rows)

        cls.save = save  # type: ignore[method-assign]
        setattr(cls, CONFIGS_ATTRIBUTE, configs)
        return cls

    return decorate
