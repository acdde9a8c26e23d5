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

**Key style.** Keys are UPPER_SNAKE_CASE and carry no package prefix (the section names the
package): ``MESSAGING["OUTBOX"]["RELAY_CLAIM_TIMEOUT"]``, ``MESSAGING["CQRS"]["MASTER"]
["OUTBOX_GRACE"]``. The reference libraries' spellings stay accepted as ``aliases`` of a key
(``Setting(10.0, float, aliases=("DEFAULT_RELAY_CLAIM_TIMEOUT",))``): a value given under an
alias is read as the key's, and ``section.get`` takes either name. Giving both is an error of
``manage.py check`` (``messaging.E009``); when it happens anyway, the key wins.

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
    ``aliases`` are other spellings of the key that are read when the key itself is not given
    (the reference libraries' names).
    """

    default: Any
    types: type | tuple[type, ...] | None = None
    secret: bool = False
    open: bool = False
    children: Mapping[str, Setting] | None = None
    validate: Callable[[Any], str | None] | None = None
    help: str = ""
    imports: bool = False
    aliases: tuple[str, ...] = ()

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


def canonical(schema: Mapping[str, Setting], key: str) -> str | None:
    """The key of ``schema`` that ``key`` is, or is an alias of; ``None`` when neither."""
    if key in schema:
        return key
    for name, spec in schema.items():
        if key in spec.aliases:
            return name
    return None


def given(values: Mapping[str, Any], key: str, spec: Setting) -> tuple[bool, Any]:
    """``(True, value)`` when ``values`` holds ``key`` or one of its aliases (the key first)."""
    if key in values:
        return True, values[key]
    for alias in spec.aliases:
        if alias in values:
            return True, values[alias]
    return False, None


def with_canonical_keys(values: Mapping[str, Any], schema: Mapping[str, Setting]) -> dict:
    """``values`` with every alias renamed to its key (a key given itself wins)."""
    renamed: dict[str, Any] = {}
    for key, value in values.items():
        name = canonical(schema, key) or key
        if name not in renamed or key == name:
            renamed[name] = value
    return renamed


class SettingsDict(dict):
    """A nested setting's merged value, keyed by the canonical keys; an alias reads its key."""

    def __init__(self, values: Mapping[str, Any], schema: Mapping[str, Setting]) -> None:
        super().__init__(values)
        self._schema = schema

    def __missing__(self, key: str) -> Any:
        name = canonical(self._schema, key)
        if name is None or name == key:
            raise KeyError(key)
        return self[name]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            return True
        name = canonical(self._schema, key) if isinstance(key, str) else None
        return name is not None and super().__contains__(name)


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
        self._aliases = {a: key for key, spec in self.schema.items() for a in spec.aliases}
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

    def _spec(self, key: str) -> tuple[str, Setting]:
        """``key`` (or the key it is an alias of) and its declaration."""
        spec = self.schema.get(key)
        if spec is not None:
            return key, spec
        name = self._aliases.get(key)
        if name is None:
            raise ConfigurationError(
                f"{SETTINGS_NAME}[{self.name!r}] has no setting {key!r}; "
                f"known: {', '.join(sorted(self.schema))}"
            )
        return name, self.schema[name]

    def get(self, key: str) -> Any:
        """The value of ``key`` (or of the key it is an alias of), its default when not given."""
        key, spec = self._spec(key)
        found, value = given(self.user_values(), key, spec)
        if not found:
            value = self._default(spec)
        if spec.children is not None and isinstance(value, Mapping):
            merged = {k: _copy(child.default) for k, child in spec.children.items()}
            merged.update(with_canonical_keys(value, spec.children))
            return SettingsDict(merged, spec.children)
        return value

    def child(self, key: str, name: str) -> Any:
        """``get(key)[name]`` for a setting with children, without building the other children's
        values (read on every save by some packages: kept to a few dict lookups)."""
        spec = self.schema.get(key)
        if spec is None:
            key, spec = self._spec(key)
        if spec.children is None:
            return self.get(key)[name]
        user = self.user_values()
        value = user.get(key)
        if value is None:
            for alias in spec.aliases:
                value = user.get(alias)
                if value is not None:
                    break
        child = spec.children.get(name)
        if child is None:
            name = canonical(spec.children, name) or name
            child = spec.children.get(name)
        if child is None or (value is not None and not isinstance(value, Mapping)):
            return self.get(key)[name]
        if value is not None:
            for spelling in (name, *child.aliases) if child.aliases else (name,):
                if spelling in value:
                    return value[spelling]
        return _copy(child.default)

    def path(self, key: str) -> str:
        """Where the user sets ``key``: ``MESSAGING['KAFKA']['ERROR_HANDLER']`` (under the alias
        the user wrote, if any)."""
        key, spec = self._spec(key)
        user = self.user_values()
        if key not in user:
            key = next((alias for alias in spec.aliases if alias in user), key)
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
        spec, value, where = self._spec(key)[1], self.get(key), self.path(key)
        for child in children:
            name = None if spec.children is None else canonical(spec.children, child)
            if spec.children is None or name is None:
                raise ConfigurationError(f"{where} has no setting {child!r}")
            spec, value, where = spec.children[name], value[name], f"{where}[{child!r}]"
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
        if key.startswith("_") or (key not in self.schema and key not in self._aliases):
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
