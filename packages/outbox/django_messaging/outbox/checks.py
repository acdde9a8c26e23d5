"""System checks of the outbox: the transports, and the transport each ``@publish`` names.

``messaging_outbox.E001`` a transport of ``TRANSPORTS`` is wrong (backend, options);
``messaging_outbox.E002`` a ``Config`` of ``@publish`` names a transport that is not defined.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks

from django_messaging.outbox.conf import settings
from django_messaging.outbox.decorators import CONFIGS_ATTRIBUTE
from django_messaging.outbox.transports import named


def check_transports(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    where = settings.path("TRANSPORTS")
    errors: list[checks.CheckMessage] = [
        checks.Error(f"{where}{problem}", id="messaging_outbox.E001")
        for problem in named.problems()
    ]
    known = named.configured()
    for model in apps.get_models():
        for config in model.__dict__.get(CONFIGS_ATTRIBUTE, ()):
            if config.transport not in known:
                errors.append(
                    checks.Error(
                        f"@publish on {model.__name__} names the outbox transport "
                        f"{config.transport!r}, which is not defined.",
                        hint=f"Define it in {where} (known: {', '.join(sorted(known))}).",
                        obj=model,
                        id="messaging_outbox.E002",
                    )
                )
    return errors
