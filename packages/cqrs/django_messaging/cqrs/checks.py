"""System checks beyond types: what a master or replica service needs to run."""

from __future__ import annotations

from typing import Any

from django.core import checks


@checks.register("messaging")
def check_cqrs(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django_messaging.core.exceptions import ConfigurationError
    from django_messaging.cqrs.conf import settings
    from django_messaging.cqrs.registries import ReplicaRegistry
    from django_messaging.cqrs.transport import BaseTransport, current_transport

    errors: list[checks.CheckMessage] = []
    try:
        transport = current_transport()
    except ConfigurationError as exc:
        errors.append(checks.Error(str(exc), id="messaging.E301"))
    else:
        if not (isinstance(transport, type) and issubclass(transport, BaseTransport)):
            errors.append(
                checks.Error(
                    "MESSAGING['CQRS']['transport'] must be a BaseTransport subclass.",
                    id="messaging.E302",
                )
            )
    if ReplicaRegistry.models and not settings.queue:
        errors.append(
            checks.Error(
                "This service has replica models but MESSAGING['CQRS']['queue'] is not set.",
                hint="Set a queue name unique to this service, e.g. 'orders_replica'.",
                id="messaging.E303",
            )
        )
    return errors
