"""``@publish([Config(...)])``: write an outbox row for every ``save()`` of a model, in the same
database transaction as the save.

    @publish([Config(destination="/topic/orders", version="v1", fields=["total"])])
    class Order(models.Model): ...

The body is ``{"id": <pk>, <field>: <value>, ...}`` (all concrete fields, or ``fields``), or what
the model method named by ``serializer`` returns. Nothing is written inside ``suppress()``.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router, transaction
from django.utils import timezone
from django.utils.encoding import is_protected_type

from django_messaging.core.suppression import is_suppressed
from django_messaging.outbox.choices import StatusChoice

M = TypeVar("M", bound=type[models.Model])

#: Set on a decorated class so that a subclass's own ``@publish`` does not wrap twice.
CONFIGS_ATTRIBUTE = "_outbox_publish_configs"


class Config(NamedTuple):
    destination: str
    fields: list[str] | None = None
    serializer: str | None = None
    version: str | None = None
    #: The name of the transport in ``MESSAGING["OUTBOX"]["TRANSPORTS"]`` that sends it.
    transport: str = "default"
    #: The message key: the name of a model attribute (called when it is a method) or a
    #: callable taking the instance. Messages with the same key reach the broker in commit
    #: order; a Kafka transport sends it as the record key.
    key: str | Callable[[Any], Any] | None = None

    @property
    def full_destination(self) -> str:
        return f"{self.destination}.{self.version}" if self.version else self.destination


def _field_body(instance: models.Model, fields: Sequence[str] | None) -> dict[str, Any]:
    """``{"id": pk, name: value, ...}`` over every concrete field (parents' included), as
    Django's serializers write values: numbers, dates and ``None`` as they are, foreign keys as
    their pk, anything else through ``value_to_string``. Many-to-many fields only when listed
    in ``fields`` (they need a query)."""
    opts = instance._meta
    body: dict[str, Any] = {"id": instance.pk}
    wanted = set(fields) if fields is not None else None
    for field in opts.concrete_fields:
        if field.primary_key or getattr(field, "parent_link", False):
            continue
        name = field.name
        if wanted is not None and name not in wanted and field.attname not in wanted:
            continue
        value = field.value_from_object(instance)
        body[name] = value if is_protected_type(value) else field.value_to_string(instance)
    for field in opts.many_to_many:
        if wanted is not None and field.name in wanted:
            body[field.name] = [related.pk for related in getattr(instance, field.name).all()]
    return body


def build_key(instance: models.Model, config: Config) -> str | None:
    if config.key is None:
        return None
    if callable(config.key):
        value = config.key(instance)
    else:
        value = getattr(instance, config.key)
        if callable(value):
            value = value()
    return None if value is None else str(value)


class NewRow(NamedTuple):
    """One outbox row to insert."""

    destination: str
    version: str | None
    body: Any
    transport: str = "default"
    key: str | None = None
    payload: bytes | None = None
    headers: dict[str, Any] | None = None


def build_body(instance: models.Model, config: Config) -> Any:
    if config.serializer:
        return getattr(instance, config.serializer)()
    return _field_body(instance, config.fields)


_INSERT_SQL: dict[tuple[str, int], str] = {}
_NULL_AT_FIRST = frozenset({"claimed_by", "claimed_until", "sent_at"})


def insert_outbox_rows(using: str, messages: Sequence[tuple[Any, ...]]) -> None:
    """INSERT one ``Published`` row per :class:`NewRow` (or ``(destination, version, body)``)
    in one statement.

    The same row ``Published.objects.bulk_create`` writes (every column, its defaults, values
    prepared by the fields themselves), without building model instances and compiling the
    statement on every save: the SQL is built once per database and row count. Like
    ``bulk_create``, it sends no ``pre_save``/``post_save`` signals for the outbox rows.
    """
    from django_messaging.outbox.models import Published, one_more_day

    connection = connections[using]
    # Columns that start out NULL (claim, send time, no version) are left to the database.
    fields = [
        f for f in Published._meta.concrete_fields if not (f.null and f.attname in _NULL_AT_FIRST)
    ]
    key = (using, len(messages))
    sql = _INSERT_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(str(f.column)) for f in fields)
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = _INSERT_SQL[key] = (
            f"INSERT INTO {quote(Published._meta.db_table)} ({columns}) "
            f"VALUES {', '.join([row] * len(messages))}"
        )
    params: list[Any] = []
    previous = None
    for message in messages:
        new = message if isinstance(message, NewRow) else NewRow(*message)
        now = timezone.now()
        if previous is not None and now <= previous:  # the relay sends configs in this order
            now = previous + dt.timedelta(microseconds=1)
        previous = now
        expires = one_more_day(now)
        values = {
            "id": uuid.uuid4(),
            "version": new.version,
            "destination": new.destination,
            "body": new.body,
            "headers": new.headers or {},
            "transport": new.transport,
            "key": new.key,
            "payload": new.payload,
            "added": now,
            "expires_at": expires,
            "retry": 0,
            "status": StatusChoice.SCHEDULE,
            "available_at": now,
            "last_error": "",
        }
        params.extend(
            f.get_db_prep_save(
                values[f.attname] if f.attname in values else f.get_default(), connection
            )
            for f in fields
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _check(cls: type[models.Model], configs: Sequence[Config]) -> None:
    for config in configs:
        if not isinstance(config, Config):
            raise ImproperlyConfigured(f"@publish on {cls.__name__}: {config!r} is not a Config.")
        if not config.destination:
            raise ImproperlyConfigured(f"@publish on {cls.__name__}: a Config needs a destination.")
        if not isinstance(config.transport, str) or not config.transport:
            raise ImproperlyConfigured(
                f"@publish on {cls.__name__}: transport must be the name of a transport."
            )
        if config.key is not None and not (callable(config.key) or isinstance(config.key, str)):
            raise ImproperlyConfigured(
                f"@publish on {cls.__name__}: key must be an attribute name or a callable."
            )
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

            using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
            # No savepoint: if the outbox INSERT fails, the caller's transaction cannot commit
            # the model row without it.
            with transaction.atomic(using=using, savepoint=False):
                original_save(self, *args, **kwargs)
                insert_outbox_rows(
                    using,
                    [
                        NewRow(
                            c.full_destination,
                            c.version,
                            build_body(self, c),
                            c.transport,
                            build_key(self, c),
                        )
                        for c in active
                    ],
                )

        cls.save = save  # type: ignore[method-assign]
        setattr(cls, CONFIGS_ATTRIBUTE, configs)
        return cls

    return decorate
