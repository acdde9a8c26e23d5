"""Dotted-path imports with errors that say which setting pointed where."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from django_messaging.core.exceptions import ConfigurationError


def import_from_setting(value: Any, setting: str) -> Any:
    """Return ``value`` itself, or the object its dotted path names.

    ``setting`` names where the value came from (``"MESSAGING['OUTBOX']['DEFAULT_CONNECTION_CLASS']"``)
    so that a wrong path is reported against the setting the user has to fix.
    """
    if not isinstance(value, str):
        return value
    try:
        return import_string(value)
    except ImportError as exc:
        raise ConfigurationError(f"{setting} = {value!r} cannot be imported: {exc}") from exc
