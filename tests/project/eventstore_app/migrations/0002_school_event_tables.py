from django.db import migrations

from django_messaging.eventstore.operations import CreateApplicationTables


class Migration(migrations.Migration):
    """The tables of applications with ``DJANGO_TABLE_PREFIX=school``, as a project adds them."""

    dependencies = [("test_eventstore", "0001_initial"), ("messaging_eventstore", "0002_dcb")]

    operations = [CreateApplicationTables("school")]
