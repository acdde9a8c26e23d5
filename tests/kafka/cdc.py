"""Change capture in the test database: triggers record every insert, update and delete of a
table with the ``kafka_skip`` value a change-data-capture connector would read (the new row, or
the old row for deletes)."""

from __future__ import annotations

from django.db import connection

from tests.project.kafka_app.models import ChangeLog


def create_triggers(tables: list[str]) -> None:
    log = ChangeLog._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                CREATE OR REPLACE FUNCTION kconnect_cdc() RETURNS trigger AS $$
                BEGIN
                  IF TG_OP = 'DELETE' THEN
                    INSERT INTO {log} ("table", op, row_id, kafka_skip)
                    VALUES (TG_TABLE_NAME, 'd', OLD.id, OLD.kafka_skip);
                    RETURN OLD;
                  END IF;
                  INSERT INTO {log} ("table", op, row_id, kafka_skip)
                  VALUES (TG_TABLE_NAME, lower(left(TG_OP, 1)), NEW.id, NEW.kafka_skip);
                  RETURN NEW;
                END $$ LANGUAGE plpgsql
                """
            )
            for table in tables:
                cursor.execute(
                    f"CREATE TRIGGER {table}_cdc AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION kconnect_cdc()"
                )
        elif connection.vendor == "sqlite":
            for table in tables:
                for op, when, row in (
                    ("i", "AFTER INSERT", "NEW"),
                    ("u", "AFTER UPDATE", "NEW"),
                    ("d", "BEFORE DELETE", "OLD"),
                ):
                    cursor.execute(
                        f"CREATE TRIGGER {table}_cdc_{op} {when} ON {table} BEGIN "
                        f'INSERT INTO {log} ("table", op, row_id, kafka_skip) '
                        f"VALUES ('{table}', '{op}', {row}.id, {row}.kafka_skip); END"
                    )
        else:  # pragma: no cover
            raise AssertionError(f"no change-capture triggers for {connection.vendor}")


def drop_triggers(tables: list[str]) -> None:
    """Remove the triggers again (tests whose transactions are committed)."""
    with connection.cursor() as cursor:
        for table in tables:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_cdc ON {table}")
            else:
                for op in ("i", "u", "d"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_cdc_{op}")


def changes(table: str) -> list[tuple[str, int, bool]]:
    """(op, row id, kafka_skip) of every recorded change of ``table``, oldest first."""
    rows = ChangeLog.objects.filter(table=table).order_by("id")
    return [(r.op, r.row_id, bool(r.kafka_skip)) for r in rows]
