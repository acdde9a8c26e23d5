"""System checks for the whole ``MESSAGING`` dict.

IDs: ``messaging.E001`` not a dict, ``E002`` unknown section, ``E003`` section not a dict,
``E004`` unknown key, ``E005`` wrong type, ``E006`` invalid value, ``E007`` serializer cannot be
imported, ``E008`` a dotted path in a setting cannot be imported, ``E009`` a key given twice,
under its name and an old spelling (an alias), ``W001`` section of an app that
is not installed (``KAFKA`` without the Kafka app: a key other than the client configurations
that the core Kafka transport reads), ``W002`` a reference library's dict (``DJANGO_KAFKA``, ``CQRS``,
``DJANGO_OUTBOX_PATTERN``) ignored because ``MESSAGING`` has the section. The reference libraries'
dicts are checked like the sections they stand in for. Values are never printed for secret keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from django.apps import apps
from django.conf import settings as django_settings
from django.core import checks

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.imports import import_from_setting
from django_messaging.core.redact import is_secret_key, redact
from django_messaging.core.settings import (
    KNOWN_SECTIONS,
    SETTINGS_NAME,
    Setting,
    canonical,
    registered_sections,
)


def _hint(key: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else None


def _show(key: str, value: Any) -> str:
    return repr(redact(value, key))


def _check_mapping(
    path: str, values: Mapping[str, Any], schema: Mapping[str, Setting]
) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name, declared in schema.items():
        spellings = [key for key in (name, *declared.aliases) if key in values]
        if len(spellings) > 1:
            errors.append(
                checks.Error(
                    f"{path} gives {' and '.join(map(repr, spellings))}, spellings of one setting.",
                    hint=f"Keep {name!r} (the other is an old spelling) and remove the others.",
                    id="messaging.E009",
                )
            )
    for key, value in values.items():
        where = f"{path}[{key!r}]"
        known = canonical(schema, str(key))
        spec = None if known is None else schema[known]
        if spec is None:
            spellings = [*schema, *(a for s in schema.values() for a in s.aliases)]
            hint = _hint(str(key), spellings) or f"Known keys: {', '.join(sorted(schema))}."
            errors.append(
                checks.Error(f"{where} is not a known setting.", hint=hint, id="messaging.E004")
            )
            continue
        if not spec.accepts(value):
            shown = (
                "a secret value"
                if spec.secret or is_secret_key(str(key))
                else _show(str(key), value)
            )
            errors.append(
                checks.Error(
                    f"{where} must be {spec.type_names()}, got {type(value).__name__} ({shown}).",
                    id="messaging.E005",
                )
            )
            continue
        if spec.children is not None and isinstance(value, Mapping):
            errors.extend(_check_mapping(where, value, spec.children))
        if spec.validate is not None:
            problem = spec.validate(value)
            if problem:
                errors.append(checks.Error(f"{where}: {problem}", id="messaging.E006"))
        if spec.imports and isinstance(value, str):
            try:
                import_from_setting(value, where)
            except ConfigurationError as exc:
                errors.append(checks.Error(str(exc), id="messaging.E008"))
    return errors


def _check_serializers(values: Any) -> list[checks.CheckMessage]:
    from django_messaging.core.serializers import SerializerError, get_serializer

    path = f"{SETTINGS_NAME}['SERIALIZERS']"
    if not isinstance(values, Mapping):
        return [checks.Error(f"{path} must be a dict of name -> dotted path.", id="messaging.E003")]
    errors: list[checks.CheckMessage] = []
    for name in values:
        try:
            get_serializer(name)
        except SerializerError as exc:
            errors.append(checks.Error(str(exc), id="messaging.E007"))
    return errors


def _check_legacy_dicts(raw: Mapping[str, Any]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name, section in registered_sections().items():
        if section.legacy is None:
            continue
        legacy = getattr(django_settings, section.legacy, None)
        if legacy is None:
            continue
        if name in raw:
            errors.append(
                checks.Warning(
                    f"{section.legacy} is ignored: {SETTINGS_NAME}[{name!r}] is set.",
                    hint=f"Move what is left of {section.legacy} into {SETTINGS_NAME}[{name!r}].",
                    id="messaging.W002",
                )
            )
        elif not isinstance(legacy, Mapping):
            errors.append(
                checks.Error(
                    f"{section.legacy} must be a dict, got {type(legacy).__name__}.",
                    id="messaging.E003",
                )
            )
        else:
            errors.extend(_check_mapping(section.legacy, legacy, section.schema))
    return errors


#: The keys of ``MESSAGING["KAFKA"]`` that the core Kafka transport reads for every package
#: (CQRS over Kafka, the outbox's and the event store's Kafka transports), Kafka app or not.
KAFKA_CLIENT_KEYS = ("GLOBAL_CONFIG", "PRODUCER_CONFIG", "CONSUMER_CONFIG")


def _check_client_configs(path: str, values: Mapping[str, Any]) -> list[checks.CheckMessage]:
    """``MESSAGING["KAFKA"]`` without the Kafka app: its client configurations are in use,
    anything else has no effect."""
    errors: list[checks.CheckMessage] = []
    for key, value in values.items():
        if key not in KAFKA_CLIENT_KEYS:
            errors.append(
                checks.Warning(
                    f"{path}[{key!r}] is set but 'django_messaging.kafka' is not in "
                    "INSTALLED_APPS, so it has no effect.",
                    hint=f"Without the Kafka app only {', '.join(KAFKA_CLIENT_KEYS)} are read.",
                    id="messaging.W001",
                )
            )
        elif not isinstance(value, Mapping):
            errors.append(
                checks.Error(
                    f"{path}[{key!r}] must be a dict, got {type(value).__name__}.",
                    id="messaging.E005",
                )
            )
    return errors


@checks.register()
def check_messaging_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    raw = getattr(django_settings, SETTINGS_NAME, {})
    if not isinstance(raw, Mapping):
        return [
            checks.Error(
                f"{SETTINGS_NAME} must be a dict, got {type(raw).__name__}.",
                hint=f"{SETTINGS_NAME} = {{'KAFKA': {{...}}, 'OUTBOX': {{...}}}}",
                id="messaging.E001",
            )
        ]
    sections = registered_sections()
    errors: list[checks.CheckMessage] = _check_legacy_dicts(raw)
    for name, values in raw.items():
        path = f"{SETTINGS_NAME}[{name!r}]"
        if name not in KNOWN_SECTIONS:
            hint = (
                _hint(str(name), KNOWN_SECTIONS) or f"Known sections: {', '.join(KNOWN_SECTIONS)}."
            )
            errors.append(
                checks.Error(f"{path} is not a known section.", hint=hint, id="messaging.E002")
            )
            continue
        if name == "SERIALIZERS":
            errors.extend(_check_serializers(values))
            continue
        if not isinstance(values, Mapping):
            errors.append(
                checks.Error(
                    f"{path} must be a dict, got {type(values).__name__}.", id="messaging.E003"
                )
            )
            continue
        app = KNOWN_SECTIONS[name]
        if name == "KAFKA" and not apps.is_installed(app):
            errors.extend(_check_client_configs(path, values))
            continue
        if not apps.is_installed(app) or name not in sections:
            errors.append(
                checks.Warning(
                    f"{path} is set but {app!r} is not in INSTALLED_APPS, so it has no effect.",
                    hint=f"Add {app!r} to INSTALLED_APPS or remove the section.",
                    id="messaging.W001",
                )
            )
            continue
        errors.extend(_check_mapping(path, values, sections[name].schema))
    return errors
