"""Keep secrets out of logs, reprs and check messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "********"
_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "sasl.jaas",
    "api_key",
    "apikey",
)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@"
)


def is_secret_key(key: str) -> bool:
    """True when a settings or config key names a credential."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact_url(url: str) -> str:
    """``amqp://user:pw@host/`` → ``amqp://user:********@host/``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)


def redact(value: Any, key: str = "") -> Any:
    """Return a copy of ``value`` safe to print: secret keys masked, URL passwords masked."""
    if key and is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value
