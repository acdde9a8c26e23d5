"""Named serializers shared by every package: Kafka topics, outbox bodies and CQRS payloads.

Built in: ``json``, ``string`` and ``bytes``. More come from ``MESSAGING["SERIALIZERS"]``
(``{"name": "dotted.path.Serializer"}``, a class or an instance) or from :func:`register`.
There is no pickle serializer, on purpose: a message must never be able to run code.

The ``json`` serializer writes compact UTF-8 JSON and encodes the types Django models hold so
that the receiving side can restore them exactly (``Field.to_python`` does):

===================  ==============================================================
Python value         JSON value
===================  ==============================================================
``datetime``         ISO 8601 with microseconds and UTC offset when aware:
                     ``"2026-12-02T06:45:23.123456+00:00"``
``date`` / ``time``  ISO 8601: ``"2026-12-02"``, ``"06:45:23.123456"``
``timedelta``        ISO 8601 duration, Django's format: ``"P1DT02H00M00.000001S"``
``Decimal``          string, every digit kept: ``"10.50"`` (never a float)
``UUID``             canonical string ``"c3c6…"``
``bytes``            base64 (standard alphabet, padded) string
lazy strings         their text
===================  ==============================================================
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import orjson
from django.utils.duration import duration_iso_string
from django.utils.functional import Promise

from django_messaging.core.exceptions import SerializerError
from django_messaging.core.settings import messaging_dict


@runtime_checkable
class Serializer(Protocol):
    """What a serializer provides: bytes out, value back."""

    content_type: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _encode_extra(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return duration_iso_string(value)
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _FallbackEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        return _encode_extra(o)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


class JSONSerializer:
    """Compact UTF-8 JSON; see the module docstring for how non-JSON types are written."""

    content_type = "application/json"

    def dumps(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value, default=_encode_extra, option=_ORJSON_OPTIONS)
        except TypeError as exc:
            if "not JSON serializable" in str(exc):
                raise SerializerError(f"json serializer: {exc}") from exc
            # orjson refuses what stdlib json accepts (integers beyond 64 bits, str subclasses
            # with custom behaviour): give those the slow path rather than an error.
            try:
                return json.dumps(
                    value, cls=_FallbackEncoder, separators=(",", ":"), ensure_ascii=False
                ).encode()
            except (TypeError, ValueError) as inner:
                raise SerializerError(f"json serializer: {inner}") from inner

    def loads(self, data: bytes | str) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializerError(f"json serializer: malformed JSON: {exc}") from exc


class StringSerializer:
    """UTF-8 text."""

    content_type = "text/plain; charset=utf-8"

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        return str(value).encode("utf-8")

    def loads(self, data: bytes | str) -> str:
        if isinstance(data, str):
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializerError(f"string serializer: payload is not UTF-8: {exc}") from exc


class BytesSerializer:
    """Bytes as they are."""

    content_type = "application/octet-stream"

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise SerializerError(f"bytes serializer: expected bytes, got {type(value).__name__}")

    def loads(self, data: bytes) -> bytes:
        return bytes(data)


_BUILTIN: dict[str, Any] = {
    "json": JSONSerializer,
    "string": StringSerializer,
    "bytes": BytesSerializer,
}
_REGISTERED: dict[str, Any] = {}


def register(name: str, serializer: Any) -> None:
    """Register a serializer class, instance or dotted path under ``name`` (packages use this)."""
    _REGISTERED[name] = serializer
    _instantiate.cache_clear()


@lru_cache(maxsize=128)
def _instantiate(name: str, source: Any) -> Serializer:
    obj = source
    if isinstance(source, str):
        from django.utils.module_loading import import_string

        try:
            obj = import_string(source)
        except ImportError as exc:
            raise SerializerError(
                f"serializer {name!r}: cannot import {source!r} ({exc}). "
                "Fix MESSAGING['SERIALIZERS'] or install the module."
            ) from exc
    if isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as exc:
            raise SerializerError(
                f"serializer {name!r}: {source!r} cannot be created without arguments ({exc})."
            ) from exc
    if not (callable(getattr(obj, "dumps", None)) and callable(getattr(obj, "loads", None))):
        raise SerializerError(f"serializer {name!r}: {source!r} has no dumps()/loads() methods.")
    return obj  # type: ignore[no-any-return]


def available() -> list[str]:
    user = messaging_dict().get("SERIALIZERS")
    names = set(_BUILTIN) | set(_REGISTERED)
    if isinstance(user, Mapping):
        names |= set(user)
    return sorted(names)


def get_serializer(name: str) -> Serializer:
    """The serializer registered as ``name``; settings win over registrations over built-ins.

    Instances are cached per (name, source), so asking on every message is cheap.
    """
    user = messaging_dict().get("SERIALIZERS")
    source: Any
    if isinstance(user, Mapping) and name in user:
        source = user[name]
    elif name in _REGISTERED:
        source = _REGISTERED[name]
    elif name in _BUILTIN:
        source = _BUILTIN[name]
    else:
        raise SerializerError(
            f"unknown serializer {name!r}; available: {', '.join(available())}. "
            "Register more in MESSAGING['SERIALIZERS']."
        )
    try:
        hash(source)
    except TypeError:  # an unhashable instance: build it uncached
        return _instantiate.__wrapped__(name, source)
    return _instantiate(name, source)


def dumps(value: Any, serializer: str = "json") -> bytes:
    return get_serializer(serializer).dumps(value)


def loads(data: bytes, serializer: str = "json") -> Any:
    return get_serializer(serializer).loads(data)
