"""The ``MESSAGING`` settings dict, read live, one section per feature package.

Each package declares its section once (``KAFKA``, ``OUTBOX``, ...) with a default and an
accepted type for every key. Values are looked up in ``django.conf.settings.MESSAGING`` on every
access, so ``override_settings`` and in-place changes take effect immediately; nothing is
captured at import time. The declarations also drive the system checks in ``checks.py``.

    from django_messaging.core.settings import Section, Setting

    kafka_settings = Section("KAFKA", "django_messaging.kafka", {
        "CLIENT_ID": Setting(None, str),
        "GLOBAL_CONFIG": Setting({}, dict, open=True),
    })
    kafka_settings.CLIENT_ID            # live value

A setting declared with ``imports=True`` holds an object or the dotted path of one:
``section.imported("ERROR_HANDLER")`` returns the object, imported once and cached until a
setting changes, and a path that cannot be imported is reported against the setting that holds
it; ``section.imported("master", "meta_function")`` reaches a key of a nested dict. Every section's cache is cleared by one ``setting_changed`` receiver (``clear_caches``), and
``on_change(callback)`` lets a package drop what it built from settings (clients, connections).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.imports import import_from_setting

SETTINGS_NAME = "MESSAGING"

#: Section name -> the app that declares it. Sections of packages that are not installed are
#: still known, so the checks can say "install X" rather than "unknown section".
KNOWN_SECTIONS: dict[str, str] = {
    "SERIALIZERS": "django_messaging.core",
    "STATUS": "django_messaging.core",
    "KAFKA": "django_messaging.kafka",
    "OUTBOX": "django_messaging.outbox",
    "CQRS": "django_messaging.cqrs",
    "EVENTSTORE": "django_messaging.eventstore",
}


@dataclass(frozen=True)
class Setting:
    """One key of a section: its default, the types it accepts, and how checks treat it.

    ``types`` of ``None`` accepts anything. ``None`` as a value is accepted when the default is
    ``None``. ``children`` declares the keys of a nested dict (merged over their defaults on read);
    ``open`` marks a dict whose keys are free-form (client configs). ``secret`` values are never
    shown. ``validate`` returns an error text for a value that has the right type but is wrong.
    ``imports`` marks a value that may be a dotted path to import (see ``Section.imported``).
    """

    default: Any
    types: type | tuple[type, ...] | None = None
    secret: bool = False
    open: bool = False
    children: Mapping[str, Setting] | None = None
    validate: Callable[[Any], str | None] | None = None
    help: str = ""
    imports: bool = False

    def accepts(self, value: Any) -> bool:
        if self.types is None or (value is None and self.default is None):
            return True
        if isinstance(value, bool) and self.types in (int, float):
            return False
        return isinstance(value, self.types)

    def type_names(self) -> str:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        names = [t.__name__ for t in types if t is not None]
        if self.default is None:
            names.append("None")
        return " or ".join(names)


_IMMUTABLE = (str, bytes, int, float, type(None), type)


def _copy(default: Any) -> Any:
    """A default a caller may change: immutable ones as they are (read on hot paths)."""
    return default if isinstance(default, _IMMUTABLE) else copy.deepcopy(default)


def messaging_dict() -> Mapping[str, Any]:
    """The raw ``settings.MESSAGING`` (an empty dict when unset)."""
    value = getattr(django_settings, SETTINGS_NAME, None)
    return value if isinstance(value, Mapping) else {}


@dataclass
class Section:
    """A live view of ``settings.MESSAGING[name]`` with declared defaults."""

    name: str
    app: str
    schema: Mapping[str, Setting]
    #: The reference library's own top-level setting (``"DJANGO_KAFKA"``, ``"CQRS"``...), read
    #: when ``MESSAGING`` has no such section, so a project can migrate one step at a time.
    legacy: str | None = None

    def __post_init__(self) -> None:
        self._imported: dict[str, Any] = {}
        _SECTIONS[self.name] = self

    def user_values(self) -> Mapping[str, Any]:
        messaging = messaging_dict()
        if self.name in messaging:
            value = messaging[self.name]
        elif self.legacy is not None:
            value = getattr(django_settings, self.legacy, None)
        else:
            value = None
        return value if isinstance(value, Mapping) else {}

    def get(self, key: str) -> Any:
        try:
            spec = self.schema[key]
        except KeyError:
            raise ConfigurationError(
                f"{SETTINGS_NAME}[{self.name!r}] has no setting {key!r}; "
                f"known: {', '.join(sorted(self.schema))}"
            ) from None
        user = self.user_values()
        value = user[key] if key in user else self._default(spec)
        if spec.children is not None and isinstance(value, Mapping):
            merged = {k: _copy(child.default) for k, child in spec.children.items()}
            merged.update(value)
            return merged
        return value

    def child(self, key: str, name: str) -> Any:
        """``get(key)[name]`` for a setting with children, without building the other children's
        values (read on every save by some packages)."""
        spec = self.schema.get(key)
        user = self.user_values()
        value = user.get(key)
        if (
            spec is None
            or spec.children is None
            or (value is not None and not isinstance(value, Mapping))
        ):
            return self.get(key)[name]
        if value is not None and name in value:
            return value[name]
        return _copy(spec.children[name].default)

    def path(self, key: str) -> str:
        """Where the user sets ``key``: ``MESSAGING['KAFKA']['ERROR_HANDLER']``."""
        messaging = messaging_dict()
        if self.name not in messaging and self.legacy is not None:
            legacy = getattr(django_settings, self.legacy, None)
            if isinstance(legacy, Mapping):
                return f"{self.legacy}[{key!r}]"
        return f"{SETTINGS_NAME}[{self.name!r}][{key!r}]"

    def imported(self, key: str, *children: str) -> Any:
        """The object an ``imports=True`` setting names (the value itself when it is no path).

        ``children`` reach a key of a nested dict: ``imported("master", "meta_function")``.
        """
        cache_key = ".".join((key, *children))
        try:
            return self._imported[cache_key]
        except KeyError:
            pass
        spec, value, where = self.schema[key], self.get(key), self.path(key)
        for child in children:
            if spec.children is None or child not in spec.children:
                raise ConfigurationError(f"{where} has no setting {child!r}")
            spec, value, where = spec.children[child], value[child], f"{where}[{child!r}]"
        if not spec.imports:
            raise ConfigurationError(f"{where} is not declared as an import path")
        imported = import_from_setting(value, where)
        self._imported[cache_key] = imported
        return imported

    def clear_cache(self) -> None:
        self._imported.clear()

    @staticmethod
    def _default(spec: Setting) -> Any:
        if spec.children is not None:
            return {k: _copy(child.default) for k, child in spec.children.items()}
        return _copy(spec.default)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key not in self.schema:
            raise AttributeError(key)
        return self.get(key)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.schema)

    def as_dict(self) -> dict[str, Any]:
        return {key: self.get(key) for key in self.schema}

    def __repr__(self) -> str:
        return f"<Section MESSAGING[{self.name!r}]>"


_SECTIONS: dict[str, Section] = {}
_ON_CHANGE: list[Callable[[], None]] = []


def registered_sections() -> Mapping[str, Section]:
    """Sections declared by the packages imported so far (installed apps import theirs)."""
    return dict(_SECTIONS)


def on_change(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` whenever ``MESSAGING`` or a legacy dict changes (``override_settings``);
    usable as a decorator. A package drops there what it built from settings."""
    if callback not in _ON_CHANGE:
        _ON_CHANGE.append(callback)
    return callback


def watched_settings() -> set[str]:
    """``MESSAGING`` and the reference libraries' dicts that sections read as fallbacks."""
    return {SETTINGS_NAME, *(s.legacy for s in _SECTIONS.values() if s.legacy)}


def clear_caches(*, setting: str, **kwargs: Any) -> None:
    """The ``setting_changed`` receiver: forget everything derived from the changed settings."""
    if setting not in watched_settings():
        return
    for section in _SECTIONS.values():
        section.clear_cache()
    for callback in list(_ON_CHANGE):
        callback()
