"""Leave room in each page of the outbox table on PostgreSQL, so that the relay's claim (which
changes no indexed column) is a heap-only-tuple update."""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(
            apps.get_model("messaging_outbox", "Published")._meta.db_table
        )
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(
            apps.get_model("messaging_outbox", "Published")._meta.db_table
        )
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("messaging_outbox", "0001_initial")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
