"""What every project gets from installing the apps, whatever its own settings say."""

from __future__ import annotations

import os
import subprocess
import sys

APPS = [
    "django_messaging.core",
    "django_messaging.kafka",
    "django_messaging.outbox",
    "django_messaging.cqrs",
    "django_messaging.eventstore",
]
LABELS = [
    "messaging_core",
    "messaging_kafka",
    "messaging_outbox",
    "messaging_cqrs",
    "messaging_eventstore",
]


def test_the_apps_need_no_migration_and_raise_no_warning_under_any_default_auto_field():
    """Each app names the primary key type its migrations create, so a project that leaves
    ``DEFAULT_AUTO_FIELD`` at Django's default (``AutoField``) gets neither a models.W042
    warning nor a migration of our tables from ``makemigrations``."""
    script = (
        "import django\n"
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "settings.configure(\n"
        f"    INSTALLED_APPS=['django.contrib.contenttypes', *{APPS!r}],\n"
        "    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}},\n"
        ")\n"
        "django.setup()\n"
        "from django.core import checks\n"
        "issues = [m for m in checks.run_checks() if m.obj is not None\n"
        "          and getattr(m.obj, '__module__', '').startswith('django_messaging')]\n"
        "assert not issues, issues\n"
        f"for label in {LABELS!r}:\n"
        "    call_command('makemigrations', label, check=True, dry_run=True, verbosity=0)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_a_project_on_sqlite_starts_without_the_clients_it_does_not_use():
    """Django's start (apps, models, the project's connectors and CQRS models) loads neither
    psycopg nor requests nor pika: each is imported by the first PostgreSQL connection, Kafka
    Connect call or RabbitMQ transport. Every process of a project paid for them before."""
    script = (
        "import sys, django; django.setup()\n"
        "from django.core import checks; checks.run_checks()\n"
        "loaded = [m for m in ('psycopg', 'requests', 'pika') if m in sys.modules]\n"
        "assert not loaded, f'imported at start: {loaded}'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.project.settings",
            "MESSAGING_TEST_DB": "sqlite",
            "MESSAGING_CQRS_TRANSPORT": "django_messaging.cqrs.transport.TransportMock",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
