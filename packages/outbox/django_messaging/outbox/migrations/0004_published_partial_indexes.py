"""The outbox table's indexes hold unsent rows only (and sent rows by ``sent_at`` for
retention), where the database has partial indexes (PostgreSQL, SQLite).

Marking a row sent then removes it from the relay's indexes instead of adding new entries to
them. MySQL and MariaDB have no partial indexes: there the full indexes of 0001 and 0003 stay,
and the migration state lists the partial ones (which Django does not create on them).
"""

from django.db import migrations, models

import django_messaging.outbox.choices

SENT = django_messaging.outbox.choices.StatusChoice.SUCCEEDED

FULL = [
    models.Index(fields=["status", "added", "id"], name="msg_outbox_pub_pending"),
    models.Index(fields=["key", "transport", "added"], name="msg_outbox_pub_key"),
]
PARTIAL = [
    models.Index(
        fields=["status", "added", "id"],
        name="msg_outbox_pub_unsent",
        condition=~models.Q(status=SENT),
    ),
    models.Index(
        fields=["key", "transport", "added"],
        name="msg_outbox_pub_key_unsent",
        condition=~models.Q(status=SENT) & models.Q(key__isnull=False),
    ),
    models.Index(fields=["sent_at"], name="msg_outbox_pub_sent", condition=models.Q(status=SENT)),
]


def _swap(apps, schema_editor, drop, create):
    if not schema_editor.connection.features.supports_partial_indexes:
        return
    model = apps.get_model("messaging_outbox", "Published")
    for index in drop:
        schema_editor.remove_index(model, index)
    for index in create:
        schema_editor.add_index(model, index)


def to_partial(apps, schema_editor):
    _swap(apps, schema_editor, FULL, PARTIAL)


def to_full(apps, schema_editor):
    _swap(apps, schema_editor, PARTIAL, FULL)


class Migration(migrations.Migration):
    dependencies = [("messaging_outbox", "0003_published_transport_key_payload")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(to_partial, to_full)],
            state_operations=[
                *(migrations.RemoveIndex("published", index.name) for index in FULL),
                *(migrations.AddIndex("published", index) for index in PARTIAL),
            ],
        )
    ]
