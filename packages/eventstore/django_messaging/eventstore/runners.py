"""Finding the eventsourcing system runner that ``sync_followers`` works on.

In order:

1. ``MESSAGING["EVENTSTORE"]["RUNNER"]``, else the top-level ``EVENTSOURCING_RUNNER`` setting:
   ``"<app>.<attribute>"`` names an attribute of an installed app's ``AppConfig`` (``<app>``
   is the app label or the app's dotted name); any other dotted path names a ``Runner`` or a
   function called without arguments that returns one.
2. Otherwise every installed app's ``AppConfig`` is searched for a public attribute holding a
   ``Runner``; exactly one must be found.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings as django_settings
from django.utils.module_loading import import_string
from eventsourcing.system import Runner

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.eventstore.conf import settings


def runner_setting() -> tuple[str, str] | None:
    """``(setting name, value)`` of the configured runner, or ``None``."""
    value = settings.RUNNER
    if value:
        return 'MESSAGING["EVENTSTORE"]["RUNNER"]', value
    value = getattr(django_settings, "EVENTSOURCING_RUNNER", None)
    if value:
        return "EVENTSOURCING_RUNNER", value
    return None


def _app_config(name: str) -> AppConfig | None:
    for config in apps.get_app_configs():
        if name in (config.label, config.name):
            return config
    return None


def _resolve(setting: str, value: Any) -> Runner[Any]:
    if not isinstance(value, str) or "." not in value:
        raise ConfigurationError(
            f"{setting} = {value!r}: use '<app label>.<attribute>' or 'dotted.path.to.get_runner'"
        )
    owner, _, attribute = value.rpartition(".")
    config = _app_config(owner)
    if config is not None:
        if not hasattr(config, attribute):
            raise ConfigurationError(
                f"{setting} = {value!r}: the AppConfig of {config.name!r} has no attribute "
                f"{attribute!r} (is it set in ready()?)"
            )
        found = getattr(config, attribute)
    else:
        try:
            found = import_string(value)
        except ImportError as exc:
            raise ConfigurationError(
                f"{setting} = {value!r} is neither an installed app's attribute nor importable: {exc}"
            ) from exc
        if not isinstance(found, Runner) and callable(found):
            try:
                found = found()
            except Exception as exc:
                raise ConfigurationError(
                    f"{setting} = {value!r}: calling it to get the runner failed: {exc!r}"
                ) from exc
    if not isinstance(found, Runner):
        raise ConfigurationError(
            f"{setting} = {value!r} gave {type(found).__name__}, not an eventsourcing.system.Runner"
        )
    return found


def discover_runners() -> list[tuple[str, Runner[Any]]]:
    """``("<app label>.<attribute>", runner)`` for every runner held by an installed app."""
    found: list[tuple[str, Runner[Any]]] = []
    seen: set[int] = set()
    for config in apps.get_app_configs():
        for attribute in dir(config):
            if attribute.startswith("_"):
                continue
            try:
                value = getattr(config, attribute)
            except Exception:  # a property that cannot be read here is not a runner
                continue
            if isinstance(value, Runner) and id(value) not in seen:
                seen.add(id(value))
                found.append((f"{config.label}.{attribute}", value))
    return found


def get_runner() -> Runner[Any]:
    """The runner ``sync_followers`` synchronises; :class:`ConfigurationError` if none or many."""
    configured = runner_setting()
    if configured is not None:
        return _resolve(*configured)
    found = discover_runners()
    if not found:
        raise ConfigurationError(
            "No eventsourcing runner found: hold one on an AppConfig (e.g. self.runner = "
            "SingleThreadedRunner(system) in ready()) or set MESSAGING['EVENTSTORE']['RUNNER']."
        )
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise ConfigurationError(
            f"Found {len(found)} eventsourcing runners ({names}); choose one with "
            "MESSAGING['EVENTSTORE']['RUNNER']."
        )
    return found[0][1]


#: eventsourcing-django's name for :func:`get_runner`.
get_eventsourcing_runner = get_runner
