"""Django project for the tests, the demo and the benchmarks: all five apps installed.

The database comes from ``MESSAGING_TEST_DB`` (``sqlite``, ``postgres`` or ``mariadb``); service
addresses from the variables documented in ``tests/services.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

from tests import services

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
#: ``MESSAGING_TEST_USE_TZ=0`` (``nox -s no_time_zones``): a project that never turned time zone
#: support on, as Django projects before 5.0 did by default.
USE_TZ = os.environ.get("MESSAGING_TEST_USE_TZ", "1") != "0"
# A zone far from UTC, half an hour off and without daylight saving: code that reads a UTC
# time in the local zone, or the reverse, is hours off here and fails its test.
TIME_ZONE = "Asia/Kolkata"
ROOT_URLCONF = "tests.project.urls"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

FEATURES = ["kafka", "outbox", "cqrs", "eventstore"]
#: ``MESSAGING_TEST_APPS=kafka`` installs core and that feature package alone, as a project that
#: depends on one distribution would (``nox -s alone``); every package by default.
APPS = os.environ.get("MESSAGING_TEST_APPS", ",".join(FEATURES)).split(",")
if unknown := set(APPS) - set(FEATURES):
    raise RuntimeError(f"MESSAGING_TEST_APPS names {sorted(unknown)}: use some of {FEATURES}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_messaging.core",
    *(f"django_messaging.{app}" for app in APPS),
    *(f"tests.project.{app}_app" for app in APPS),
    "tests.project.testdb",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DB = os.environ.get("MESSAGING_TEST_DB", "sqlite")
#: A database name of this run's own, so that runs side by side share a server but no database.
#: Written back to the environment: the processes a test starts inherit it.
DB_NAME = os.environ.setdefault("MESSAGING_TEST_DB_NAME", f"messaging_{uuid.uuid4().hex[:8]}")
#: SQLite files go to the system's temporary directory, named after the database.
_TMP = Path(tempfile.gettempdir())

if DB == "postgres":
    _pg = services.url_parts(services.POSTGRES_URL)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DB_NAME,
            "USER": _pg["user"] or "postgres",
            "PASSWORD": _pg["password"] or "",
            "HOST": _pg["host"],
            "PORT": _pg["port"] or 5432,
            "TEST": {"NAME": f"test_{DB_NAME}"},
        }
    }
elif DB == "mariadb":
    import pymysql

    pymysql.install_as_MySQLdb()
    _my = services.url_parts(services.MARIADB_URL)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": DB_NAME,
            "USER": _my["user"] or "root",
            "PASSWORD": _my["password"] or "",
            "HOST": _my["host"],
            "PORT": _my["port"] or 3306,
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
            "TEST": {"NAME": f"test_{DB_NAME}", "CHARSET": "utf8mb4"},
        }
    }
elif DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("MESSAGING_SQLITE_PATH", str(_TMP / f"{DB_NAME}.sqlite3")),
            "TEST": {
                "NAME": os.environ.get(
                    "MESSAGING_SQLITE_TEST_PATH", str(_TMP / f"test_{DB_NAME}.sqlite3")
                )
            },
            "OPTIONS": {"timeout": 20},
        }
    }
else:
    raise RuntimeError(f"MESSAGING_TEST_DB={DB!r}: use sqlite, postgres or mariadb")

#: Extra OPTIONS for the database's driver, as JSON: to run the suite against a configuration
#: such as PostgreSQL's {"server_side_binding": true} or {"pool": true}.
DATABASES["default"].setdefault("OPTIONS", {}).update(
    json.loads(os.environ.get("MESSAGING_TEST_DB_OPTIONS", "{}"))
)

# A second database of the same kind, for the event store's DJANGO_DB_ALIAS tests. Only tests
# that name it (databases = {"default", "eventstore"}) make the test runner create it.
DATABASES["eventstore"] = {
    **DATABASES["default"],
    "NAME": (
        os.environ.get(
            "MESSAGING_SQLITE_EVENTSTORE_PATH", str(_TMP / f"{DB_NAME}_eventstore.sqlite3")
        )
        if DB == "sqlite"
        else f"{DB_NAME}_eventstore"
    ),
    "TEST": {
        **DATABASES["default"].get("TEST", {}),
        "NAME": (
            str(_TMP / f"test_{DB_NAME}_eventstore.sqlite3")
            if DB == "sqlite"
            else f"test_{DB_NAME}_eventstore"
        ),
    },
}

_stomp_host, _stomp_port = services.host_port(services.STOMP_ADDRESS, 61613)

MESSAGING: dict = {
    "KAFKA": {
        # The session fixture (or the demo) fills in bootstrap.servers once the broker is up.
        "GLOBAL_CONFIG": {"bootstrap.servers": os.environ.get(services.KAFKA_BOOTSTRAP_ENV, "")},
        "CONSUMER_CONFIG": dict(services.FAST_GROUP_CONFIG),
    },
    "OUTBOX": {
        "DEFAULT_STOMP_HOST_AND_PORTS": [(_stomp_host, _stomp_port)],
        # Short waits so the tests see retries, reconnects and idle polls quickly.
        "DEFAULT_PRODUCER_WAITING_TIME": 0.05,
        "DEFAULT_MAXIMUM_BACKOFF": 1,
        "DEFAULT_PAUSE_FOR_RETRY": 0,
        "DEFAULT_WAIT_RETRY": 0,
        "DEFAULT_RECEIPT_TIMEOUT": 5,
        "DEFAULT_STOMP_HEARTBEATS": (2000, 2000),
        "DEFAULT_CONSUMER_RETRY_WAIT": 0.01,
        # Test queues live on a shared broker: let RabbitMQ drop them 10 minutes after use.
        "DEFAULT_STOMP_QUEUE_HEADERS": {
            "durable": "true",
            "auto-delete": "false",
            "prefetch-count": "1",
            "x-expires": "600000",
        },
    },
    "CQRS": {
        "url": services.RABBITMQ_URL,
        # Tests give each master/replica pair its own exchange and queue (override_settings in
        # the process, these variables in a `cqrs_consume` subprocess).
        "exchange": os.environ.get("MESSAGING_CQRS_EXCHANGE", f"cqrs_tests_{DB_NAME}"),
        "queue": os.environ.get("MESSAGING_CQRS_QUEUE", f"cqrs_tests_replica_{DB_NAME}"),
        "transport": os.environ.get(
            "MESSAGING_CQRS_TRANSPORT", "django_messaging.cqrs.transport.RabbitMQTransport"
        ),
        # Master keys of a relay process (JSON), e.g. {"CQRS_PENDING_FLUSH_BATCH": 20}; the
        # chaos soak shortens how long a killed master's stored messages wait for the relay.
        "master": {
            "CQRS_OUTBOX_GRACE": float(os.environ.get("MESSAGING_CQRS_OUTBOX_GRACE", "60")),
            **json.loads(os.environ.get("MESSAGING_CQRS_MASTER") or "{}"),
        },
        # The Kafka transport's keys (JSON), e.g. {"TOPIC_PARTITIONS": 2}.
        "KAFKA": json.loads(os.environ.get("MESSAGING_CQRS_KAFKA") or "{}"),
        "replica": {
            "CQRS_MAX_RETRIES": int(os.environ.get("MESSAGING_CQRS_MAX_RETRIES", "2")),
            "CQRS_RETRY_DELAY": float(os.environ.get("MESSAGING_CQRS_RETRY_DELAY", "0.2")),
        },
    },
    "EVENTSTORE": {
        "PERSISTENCE_MODULE": "django_messaging.eventstore",
        "DJANGO_SUBSCRIPTION_POLL_INTERVAL": 0.2,
        # The subprocess tests of sync_followers name their runner through this variable.
        "RUNNER": os.environ.get("MESSAGING_EVENTSTORE_RUNNER") or None,
    },
}

if os.environ.get("MESSAGING_OUTBOX_TRANSPORTS"):  # JSON: the transports a test's relays use
    import json

    MESSAGING["OUTBOX"]["TRANSPORTS"] = json.loads(os.environ["MESSAGING_OUTBOX_TRANSPORTS"])

if os.environ.get("MESSAGING_OUTBOX_DATABASES"):  # comma-separated aliases a test's relays read
    MESSAGING["OUTBOX"]["DATABASES"] = os.environ["MESSAGING_OUTBOX_DATABASES"].split(",")

if os.environ.get("MESSAGING_OUTBOX_CLAIM_TIMEOUT"):  # otherwise the package default
    MESSAGING["OUTBOX"]["DEFAULT_RELAY_CLAIM_TIMEOUT"] = float(
        os.environ["MESSAGING_OUTBOX_CLAIM_TIMEOUT"]
    )
if os.environ.get("MESSAGING_OUTBOX_SHUTDOWN_TIMEOUT"):  # otherwise the package default
    MESSAGING["OUTBOX"]["DEFAULT_CONSUMER_SHUTDOWN_TIMEOUT"] = float(
        os.environ["MESSAGING_OUTBOX_SHUTDOWN_TIMEOUT"]
    )

# A package tested alone keeps KAFKA's client configurations: the core Kafka transport reads
# them for CQRS over Kafka and the event store's forwarder too.
MESSAGING = {
    key: value
    for key, value in MESSAGING.items()
    if key.lower() not in FEATURES or key.lower() in APPS or key == "KAFKA"
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_messaging": {
            "handlers": ["console"],
            "level": os.environ.get("MESSAGING_LOG_LEVEL", "WARNING"),
        }
    },
}
