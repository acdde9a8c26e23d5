from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("messaging_cqrs", "0003_pending_message_lease")]

    operations = [
        migrations.AddField(
            model_name="pendingmessage",
            name="trace_context",
            field=models.TextField(blank=True, null=True),
        ),
    ]
