"""Settings of the django-cqrs service used by the wire compatibility test."""

import os

SECRET_KEY = "compat-tests-only"
USE_TZ = os.environ.get("REF_USE_TZ", "1") == "1"
TIME_ZONE = os.environ.get("REF_TIME_ZONE", "UTC")
INSTALLED_APPS = ["django.contrib.contenttypes", "dj_cqrs", "refapp"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["REF_DB"],
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CQRS = {
    "transport": "dj_cqrs.transport.RabbitMQTransport",
    "url": os.environ["REF_AMQP_URL"],
    "exchange": os.environ["REF_EXCHANGE"],
    "queue": os.environ["REF_QUEUE"],
    "master": {"CQRS_MESSAGE_TTL": 3600},
    "replica": {"CQRS_MAX_RETRIES": 2, "CQRS_RETRY_DELAY": 1, "delay_queue_max_size": 50},
}
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django-cqrs": {"handlers": ["console"], "level": "INFO"}},
}
