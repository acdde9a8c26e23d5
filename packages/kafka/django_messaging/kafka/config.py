"""Client configuration built from the settings, with django-kafka's precedence."""

from __future__ import annotations

import logging
from typing import Any

from django_messaging.kafka.conf import settings

logger = logging.getLogger("django_messaging.kafka.client")


def error_handler() -> Any:
    """A new instance of the ``ERROR_HANDLER`` class (read now)."""
    handler = settings.imported("ERROR_HANDLER")
    return handler() if isinstance(handler, type) else handler


def producer_config(*extra: dict[str, Any] | None) -> dict[str, Any]:
    """``client.id`` < ``GLOBAL_CONFIG`` < ``PRODUCER_CONFIG`` < ``extra`` (class, then call)."""
    config: dict[str, Any] = {"client.id": settings.CLIENT_ID}
    config.update(settings.GLOBAL_CONFIG)
    config.update(settings.PRODUCER_CONFIG)
    for part in extra:
        config.update(part or {})
    config.setdefault("logger", logger)
    config.setdefault("error_cb", error_handler())
    return config


#: Library defaults under every consumer config. librdkafka waits ``fetch.queue.backoff.ms``
#: (1 s) before fetching again once its prefetch queue was full, so a consumer that does any
#: work per batch stalls for up to a second every ~100k messages; 20 ms keeps it fed.
CONSUMER_DEFAULTS: dict[str, Any] = {"fetch.queue.backoff.ms": 20}


def consumer_config(*extra: dict[str, Any] | None) -> dict[str, Any]:
    """Library defaults < ``client.id`` < ``GLOBAL_CONFIG`` < ``CONSUMER_CONFIG`` <
    ``logger``/``error_cb`` < ``extra``."""
    config: dict[str, Any] = {**CONSUMER_DEFAULTS, "client.id": settings.CLIENT_ID}
    config.update(settings.GLOBAL_CONFIG)
    config.update(settings.CONSUMER_CONFIG)
    config["logger"] = logger
    config["error_cb"] = error_handler()
    for part in extra:
        config.update(part or {})
    return config


def admin_config() -> dict[str, Any]:
    config: dict[str, Any] = {"client.id": settings.CLIENT_ID}
    config.update(settings.GLOBAL_CONFIG)
    config["logger"] = logger
    return config
