"""The outbox table's migrations: complete, and 0004's partial indexes in both directions."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

APP = "messaging_outbox"
FULL = {"msg_outbox_pub_pending", "msg_outbox_pub_key"}
PARTIAL = {"msg_outbox_pub_unsent", "msg_outbox_pub_key_unsent", "msg_outbox_pub_sent"}


def test_the_migrations_of_the_models_are_complete() -> None:
    out = io.StringIO()
    call_command("makemigrations", APP, "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "messaging_outbox_published")
    return {name for name, info in found.items() if info["index"]} & (FULL | PARTIAL)


def _migrate(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([(APP, target)])


def test_the_partial_indexes_replace_the_full_ones_and_back() -> None:
    """Where the database has no partial indexes (MySQL, MariaDB) the full ones stay."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes(APP)[0][1]
    now = PARTIAL if connection.features.supports_partial_indexes else FULL
    assert _indexes() == now
    try:
        _migrate("0003_published_transport_key_payload")
        assert _indexes() == FULL
    finally:
        _migrate(latest)
    assert _indexes() == now
