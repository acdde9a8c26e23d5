"""The migration operation that creates an application's own tables.

An application whose environment sets ``DJANGO_TABLE_PREFIX`` keeps its events, snapshots
and tracking positions in ``<prefix>_events``, ``<prefix>_snapshots`` and ``<prefix>_tracking``.
Those tables come from a migration of one of the project's apps, so they are created, listed by
``showmigrations``, shown by ``sqlmigrate`` and dropped (when unapplied) like any other::

    # orders/migrations/0002_event_tables.py  (manage.py makemigrations --empty orders)
    from django.db import migrations

    from django_messaging.eventstore.operations import CreateApplicationTables


    class Migration(migrations.Migration):
        dependencies = [("orders", "0001_initial"), ("messaging_eventstore", "0002_dcb")]
        operations = [CreateApplicationTables("orders")]

The tables have the columns and constraints of the shared ones (their constraint names carry
the prefix). The notification sequence table stays shared: one row per application.
Database routers are asked as for the ``messaging_eventstore`` app.
"""

from __future__ import annotations

from typing import Any

from django.apps.registry import Apps
from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from django_messaging.eventstore.tables import application_tables

__all__ = ["CreateApplicationTables", "table_models"]

APP_LABEL = "messaging_eventstore"


def table_models(prefix: str) -> list[type[models.Model]]:
    """Unregistered models of the tables of ``prefix`` (events, snapshots, tracking), built
    from the shared tables' models in a registry of their own."""
    from django_messaging.eventstore.models import (
        AggregateRecord,
        NotificationTrackingRecord,
        StoredEventRecord,
    )

    tables = application_tables(prefix)
    if not tables.prefix:
        raise ValueError("a table prefix is required")
    registry = Apps()
    built: list[type[models.Model]] = []
    for source, table in (
        (StoredEventRecord, tables.events),
        (AggregateRecord, tables.aggregate),
        (NotificationTrackingRecord, tables.tracking),
    ):
        constraints = [
            models.UniqueConstraint(
                fields=list(constraint.fields),
                name=f"{prefix}_{constraint.name.removeprefix('messaging_es_')}",
            )
            for constraint in source._meta.constraints
            if isinstance(constraint, models.UniqueConstraint)
        ]
        meta = type(
            "Meta",
            (),
            {
                "apps": registry,
                "app_label": APP_LABEL,
                "db_table": table,
                "constraints": constraints,
            },
        )
        attrs: dict[str, Any] = {field.name: field.clone() for field in source._meta.local_fields}
        attrs.update(Meta=meta, __module__=__name__)
        built.append(type(f"{source.__name__}_{prefix}", (models.Model,), attrs))
    return built


class CreateApplicationTables(Operation):
    """Create (and, unapplied, drop) the tables of the application(s) with table prefix
    ``prefix``. It changes no model state: the tables are outside the ORM."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, prefix: str) -> None:
        application_tables(prefix)  # a wrong prefix fails when the migration is loaded
        self.prefix = prefix

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (f"{__name__}.{type(self).__name__}", [self.prefix], {})

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        for model in table_models(self.prefix):
            if self.allow_migrate_model(schema_editor.connection.alias, model):
                schema_editor.create_model(model)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        for model in reversed(table_models(self.prefix)):
            if self.allow_migrate_model(schema_editor.connection.alias, model):
                schema_editor.delete_model(model)

    def describe(self) -> str:
        tables = application_tables(self.prefix)
        return (
            f"Create event store tables {tables.events}, {tables.aggregate} and {tables.tracking}"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.prefix}_event_tables"
