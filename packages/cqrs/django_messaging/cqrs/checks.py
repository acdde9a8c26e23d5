"""System checks beyond types: what a master or replica service needs to run."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.core import checks

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.cqrs.conf import NO_EFFECT, settings
from django_messaging.cqrs.registries import ReplicaRegistry
from django_messaging.cqrs.transport import BaseTransport, current_transport


@checks.register("messaging")
def check_cqrs(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    try:
        transport = current_transport()
    except ConfigurationError:
        pass  # a path that cannot be imported: the settings check reports messaging.E008
    else:
        if not (isinstance(transport, type) and issubclass(transport, BaseTransport)):
            errors.append(
                checks.Error(
                    "MESSAGING['CQRS']['transport'] must be a BaseTransport subclass.",
                    id="messaging.E302",
                )
            )
        elif _is_kafka(transport) and importlib.util.find_spec("confluent_kafka") is None:
            errors.append(
                checks.Error(
                    "MESSAGING['CQRS']['transport'] is the Kafka transport, but confluent-kafka "
                    "is not installed.",
                    hint='pip install "django-messaging-cqrs[kafka]"',
                    id="messaging.E305",
                )
            )
    if ReplicaRegistry.models and not settings.QUEUE:
        errors.append(
            checks.Error(
                "This service has replica models but MESSAGING['CQRS']['queue'] is not set.",
                hint="Set a queue name unique to this service, e.g. 'orders_replica'.",
                id="messaging.E303",
            )
        )
    user = settings.user_values()
    side = "REPLICA" if "REPLICA" in user else "replica"
    replica = user.get(side)
    for key in NO_EFFECT:
        if isinstance(replica, dict) and key in replica:
            errors.append(
                checks.Warning(
                    f"MESSAGING['CQRS'][{side!r}][{key!r}] has no effect: a retried message "
                    "waits in a broker-side delay queue, never in the worker's memory.",
                    hint="Remove the key.",
                    id="messaging.W304",
                )
            )
    return errors


def _is_kafka(transport: type) -> bool:
    from django_messaging.cqrs.transport.kafka import KafkaTransport

    return issubclass(transport, KafkaTransport)
