"""The ``MESSAGING["KAFKA"]`` settings section: every key, its default and its type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django_messaging.core.settings import Section, Setting

#: Keys of the Kafka clients, topics, consumers and retries.
KAFKA_SETTINGS: dict[str, Setting] = {}


# --- Kafka Connect ----------------------------------------------------------------------------


def _check_connect_host(value: Any) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be the base URL of the Kafka Connect REST API, e.g. 'http://connect:8083'."
    return None


def _check_connect_auth(value: Any) -> str | None:
    if value is None or not isinstance(value, tuple | list):
        return None
    if len(value) != 2 or not all(isinstance(part, str) for part in value):
        return "must be a requests auth object or a (username, password) pair of strings."
    return None


def _check_connect_retry(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    from urllib3.util.retry import Retry

    try:
        Retry(**value)
    except TypeError as exc:
        return f"is not a valid set of urllib3 Retry arguments: {exc}"
    return None


def _check_timeout(value: Any) -> str | None:
    numbers = value if isinstance(value, tuple | list) else (value,)
    if isinstance(value, tuple | list) and len(value) != 2:
        return "must be seconds, or a (connect, read) pair of seconds."
    if any(isinstance(n, bool) or not isinstance(n, int | float) or n <= 0 for n in numbers):
        return "must be a positive number of seconds, or a (connect, read) pair of them."
    return None


try:  # requests is a dependency of this package; the import only widens the accepted types.
    from requests.auth import AuthBase

    _AUTH_TYPES: tuple[type, ...] = (tuple, list, AuthBase)
except ImportError:  # pragma: no cover
    _AUTH_TYPES = (tuple, list)

CONNECT_SETTINGS: dict[str, Setting] = {
    "CONNECT_HOST": Setting(
        None,
        str,
        validate=_check_connect_host,
        help="Base URL of the Kafka Connect REST API.",
    ),
    "CONNECT_AUTH": Setting(
        None,
        _AUTH_TYPES,
        secret=True,
        validate=_check_connect_auth,
        help="A requests auth object, or (username, password) for HTTP Basic auth.",
    ),
    "CONNECT_RETRY": Setting(
        {
            "connect": 5,
            "read": 5,
            "status": 5,
            "backoff_factor": 0.5,
            "status_forcelist": [502, 503, 504],
        },
        dict,
        open=True,
        validate=_check_connect_retry,
        help="Keyword arguments of urllib3.util.retry.Retry for every Connect request.",
    ),
    "CONNECT_REQUESTS_TIMEOUT": Setting(
        30,
        (int, float, tuple, list),
        validate=_check_timeout,
        help="Timeout in seconds of every Connect request (or a (connect, read) pair).",
    ),
    "CONNECTOR_NAME_PREFIX": Setting(
        "",
        str,
        help="Prefix of every connector name: '<prefix>.<ClassName>'.",
    ),
}

# --- end of Kafka Connect ---------------------------------------------------------------------


settings = Section(
    "KAFKA",
    "django_messaging.kafka",
    {**KAFKA_SETTINGS, **CONNECT_SETTINGS},
    legacy="DJANGO_KAFKA",
)
