"""The eventsourcing infrastructure factory of ``PERSISTENCE_MODULE='django_messaging.eventstore'``.

Environment variables it reads (application-prefixed variants such as
``TRAININGSCHOOL_DJANGO_DB_ALIAS`` win, as everywhere in eventsourcing):

* ``DJANGO_DB_ALIAS`` -- the ``DATABASES`` alias; default ``MESSAGING["EVENTSTORE"]
  ["DJANGO_DB_ALIAS"]``, then ``"default"``;
* ``ORIGINATOR_ID_TYPE`` -- ``uuid`` (default) or ``text``;
* ``APPLICATION_RECORDER_TOPIC``, ``PROCESS_RECORDER_TOPIC``, ``TRACKING_RECORDER_TOPIC`` --
  subclasses of the recorders to use instead;
* ``DJANGO_SUBSCRIPTION_POLL_INTERVAL`` -- seconds between polls of an idle subscription;
* ``DJANGO_TABLE_PREFIX`` -- the application's own tables ``<prefix>_events``,
  ``<prefix>_snapshots`` and ``<prefix>_tracking`` instead of the shared ones (create them with
  the migration operation :class:`~django_messaging.eventstore.operations.CreateApplicationTables`);
* ``CREATE_TABLE`` is accepted and ignored: the tables come from ``manage.py migrate``.
"""

from __future__ import annotations

from typing import Any, cast

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections
from eventsourcing.dcb.persistence import DCBInfrastructureFactory
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    OperationalError,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic
from typing_extensions import TypeVar

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from django_messaging.eventstore.recorders import (
    DjangoAggregateRecorder,
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
    DjangoTrackingRecorder,
)
from django_messaging.eventstore.tables import application_tables

TDjangoTrackingRecorder = TypeVar(
    "TDjangoTrackingRecorder", bound=DjangoTrackingRecorder, default=DjangoTrackingRecorder
)

APP_NAME = "django_messaging.eventstore"


class Factory(
    InfrastructureFactory[DjangoTrackingRecorder],
    DCBInfrastructureFactory[DjangoTrackingRecorder],
):
    """Builds Django recorders for one application (``env.name``): for an ``Application``,
    and the DCB recorder for a ``DCBApplication`` (:meth:`dcb_recorder`)."""

    DJANGO_DB_ALIAS = "DJANGO_DB_ALIAS"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"
    DJANGO_SUBSCRIPTION_POLL_INTERVAL = "DJANGO_SUBSCRIPTION_POLL_INTERVAL"
    DJANGO_TABLE_PREFIX = "DJANGO_TABLE_PREFIX"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class: type[DjangoAggregateRecorder] = DjangoAggregateRecorder
    application_recorder_class: type[DjangoApplicationRecorder] = DjangoApplicationRecorder
    tracking_recorder_class: type[DjangoTrackingRecorder] = DjangoTrackingRecorder
    process_recorder_class: type[DjangoProcessRecorder] = DjangoProcessRecorder
    dcb_recorder_class: type[DjangoDCBRecorder] = DjangoDCBRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        if not apps.apps_ready:
            raise OperationalError(
                "Django is not set up: call django.setup() (or run under manage.py) before "
                "constructing an application with PERSISTENCE_MODULE='django_messaging.eventstore'."
            )
        if not apps.is_installed(APP_NAME):
            raise OperationalError(
                f"Add {APP_NAME!r} to INSTALLED_APPS and run 'manage.py migrate' to store "
                "events with PERSISTENCE_MODULE='django_messaging.eventstore'."
            )
        self.using = self._db_alias()
        self.originator_id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if self.originator_id_type not in ("uuid", "text"):
            raise OSError(
                f"Invalid {self.ORIGINATOR_ID_TYPE} {self.originator_id_type!r}: use 'uuid' or 'text'"
            )
        try:
            self.tables = application_tables(self.env.get(self.DJANGO_TABLE_PREFIX))
        except ValueError as exc:
            raise OSError(f"Invalid {self.DJANGO_TABLE_PREFIX}: {exc}") from None
        interval = self.env.get(self.DJANGO_SUBSCRIPTION_POLL_INTERVAL)
        if not interval:
            from django_messaging.eventstore.conf import settings

            interval = settings.DJANGO_SUBSCRIPTION_POLL_INTERVAL
        try:
            self.poll_interval = float(interval) if interval not in (None, "") else 0.5
        except ValueError:
            raise OSError(
                f"{self.DJANGO_SUBSCRIPTION_POLL_INTERVAL}={interval!r} is not a number of seconds"
            ) from None

    def _db_alias(self) -> str:
        alias = self.env.get(self.DJANGO_DB_ALIAS)
        if not alias:
            from django_messaging.eventstore.conf import settings

            alias = settings.DJANGO_DB_ALIAS or DEFAULT_DB_ALIAS
        if alias not in connections.settings:
            raise OSError(
                f"{self.DJANGO_DB_ALIAS}={alias!r} is not in DATABASES "
                f"(known aliases: {', '.join(sorted(connections.settings))})"
            )
        return alias

    @property
    def application_name(self) -> str:
        return self.env.name

    def _common(self) -> dict[str, Any]:
        return {
            "application_name": self.application_name,
            "using": self.using,
            "originator_id_type": self.originator_id_type,
            "tables": self.tables,
        }

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return type(self).aggregate_recorder_class(purpose=purpose, **self._common())

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._class_from_topic(
            self.APPLICATION_RECORDER_TOPIC, type(self).application_recorder_class
        )
        return cls(poll_interval=self.poll_interval, **self._common())

    def tracking_recorder(
        self, tracking_recorder_class: type[TDjangoTrackingRecorder] | None = None
    ) -> TDjangoTrackingRecorder:
        cls: type[Any] = tracking_recorder_class or self._class_from_topic(
            self.TRACKING_RECORDER_TOPIC, type(self).tracking_recorder_class
        )
        if not (isinstance(cls, type) and issubclass(cls, DjangoTrackingRecorder)):
            raise TypeError(f"{cls!r} is not a subclass of DjangoTrackingRecorder")
        return cast(TDjangoTrackingRecorder, cls(**self._common()))

    def process_recorder(self) -> ProcessRecorder:
        cls = self._class_from_topic(self.PROCESS_RECORDER_TOPIC, type(self).process_recorder_class)
        return cls(poll_interval=self.poll_interval, **self._common())

    def dcb_recorder(self) -> DjangoDCBRecorder:
        if self.tables.prefix:
            raise OSError(
                f"{self.DJANGO_TABLE_PREFIX} is not supported for DCB applications: their "
                "events are in the shared DCB tables"
            )
        return type(self).dcb_recorder_class(
            self.application_name, self.using, poll_interval=self.poll_interval
        )

    def _class_from_topic(self, key: str, default: type[Any]) -> type[Any]:
        topic = self.env.get(key)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, default)):
            raise TypeError(f"{key}={topic!r} is not a subclass of {default.__qualname__}")
        return cls
