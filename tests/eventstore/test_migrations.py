"""The migrations match the models, and the tables carry the app's prefix."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations() -> None:
    out = StringIO()
    call_command("makemigrations", "messaging_eventstore", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_tables_are_prefixed() -> None:
    tables = [m._meta.db_table for m in apps.get_app_config("messaging_eventstore").get_models()]
    assert len(tables) == 7
    assert all(table.startswith("messaging_eventstore_") for table in tables)
