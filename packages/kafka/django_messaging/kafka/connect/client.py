"""HTTP client of the Kafka Connect REST API.

``KafkaConnectSession`` is a ``requests.Session`` bound to one Connect host: relative paths,
a default timeout on every call and urllib3 retries (``CONNECT_RETRY``) mounted for that host.
``KafkaConnectClient`` wraps the endpoints the connectors and ``kafka_connect`` use and turns
every failure into a :class:`KafkaConnectError` that names the request and what Connect said,
never the credentials or the connector configuration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from django_messaging.core.redact import redact_url
from django_messaging.kafka.exceptions import DjangoKafkaError, KafkaConnectError

__all__ = ["KafkaConnectClient", "KafkaConnectError", "KafkaConnectSession"]

logger = logging.getLogger(__name__)

Timeout = float | tuple[float, float]


def _public_host(host: str) -> str:
    """The host as it may be shown: no user or password from the URL."""
    parts = urlsplit(host)
    if parts.username is None and parts.password is None:
        return host.rstrip("/")
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return redact_url(urlunsplit((parts.scheme, netloc, parts.path, "", ""))).rstrip("/")


def _auth(auth: Any) -> Callable[..., Any] | tuple[str, str] | None:
    """What requests takes as ``auth``: a pair, or an object it calls with each request
    (``AuthBase`` and its subclasses, or any callable)."""
    if isinstance(auth, tuple | list) and len(auth) == 2:
        return (str(auth[0]), str(auth[1]))
    if auth is None or (callable(auth) and not isinstance(auth, type)):
        return auth  # type: ignore[no-any-return]
    raise DjangoKafkaError(
        "CONNECT_AUTH must be a requests auth object or a (username, password) pair, "
        f"got {type(auth).__name__}."
    )


class KafkaConnectSession(requests.Session):
    """A session for one Connect host: ``session.get("/connectors")`` with default timeout."""

    def __init__(
        self,
        host: str,
        auth: Any = None,
        retry: Mapping[str, Any] | Retry | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        super().__init__()
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.auth = _auth(auth)
        if retry is not None:
            max_retries = retry if isinstance(retry, Retry) else Retry(**retry)
            adapter = HTTPAdapter(max_retries=max_retries)
            self.mount(f"{self.host}/", adapter)
        self.headers.update({"Accept": "application/json"})

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if not url.startswith(("http://", "https://")):
            url = f"{self.host}/{url.lstrip('/')}"
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<KafkaConnectSession {_public_host(self.host)}>"


def _error_text(response: requests.Response) -> str:
    """What Connect said about a failed request (its JSON ``message``, else the body's start)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text else (response.reason or "")
    if isinstance(body, Mapping) and body.get("message"):
        return str(body["message"])
    return str(body)[:300]


class KafkaConnectClient:
    """The Connect REST endpoints used to manage connectors.

    Every method raises :class:`KafkaConnectError` on a failed request, a timeout or an
    unreachable host, after the retries configured by ``retry`` (urllib3 ``Retry`` kwargs).
    """

    def __init__(
        self,
        host: str,
        auth: Any = None,
        retry: Mapping[str, Any] | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.timeout = timeout
        self._session = KafkaConnectSession(host, auth=auth, retry=retry, timeout=timeout)

    def __repr__(self) -> str:
        return f"<KafkaConnectClient {_public_host(self.host)}>"

    def close(self) -> None:
        self._session.close()

    # --- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        allow: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send one request; a non-2xx status not listed in ``allow`` raises."""
        where = f"{method} {_public_host(self.host)}{path}"
        try:
            response = self._session.request(method, path, json=json)
        except requests.exceptions.RetryError as exc:
            raise KafkaConnectError(
                f"{where}: Kafka Connect kept failing, gave up after the retries of "
                f"CONNECT_RETRY ({_reason(exc)})."
            ) from None
        except requests.exceptions.Timeout:
            raise KafkaConnectError(
                f"{where}: no answer within {self.timeout}s (CONNECT_REQUESTS_TIMEOUT)."
            ) from None
        except requests.exceptions.ConnectionError as exc:
            cause = _innermost(exc)
            if isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
                cause, urllib3.exceptions.NewConnectionError
            ):
                raise KafkaConnectError(
                    f"{where}: no answer within {self.timeout}s (CONNECT_REQUESTS_TIMEOUT), "
                    "also after the retries of CONNECT_RETRY."
                ) from None
            raise KafkaConnectError(
                f"{where}: cannot reach Kafka Connect ({_reason(exc)}). "
                "Check CONNECT_HOST and that Connect is running."
            ) from None
        except requests.exceptions.RequestException as exc:
            raise KafkaConnectError(f"{where}: {type(exc).__name__}: {_reason(exc)}") from None
        logger.debug("%s -> %s", where, response.status_code)
        if response.ok or response.status_code in allow:
            return response
        if response.status_code in (401, 403):
            detail = "check CONNECT_AUTH"
        else:
            detail = _error_text(response)
        raise KafkaConnectError(
            f"{where}: HTTP {response.status_code}: {detail}",
            status_code=response.status_code,
            context=response,
        )

    # --- endpoints ---------------------------------------------------------------------------

    def list_connectors(self) -> list[str]:
        """``GET /connectors``: the names of the connectors Connect runs."""
        return list(self.request("GET", "/connectors").json())

    def update_or_create(self, name: str, config: Mapping[str, Any]) -> requests.Response:
        """``PUT /connectors/{name}/config``: 201 when created, 200 when updated."""
        return self.request("PUT", f"/connectors/{_quote(name)}/config", json=dict(config))

    def delete(self, name: str) -> bool:
        """``DELETE /connectors/{name}``: ``False`` when there was no such connector."""
        response = self.request("DELETE", f"/connectors/{_quote(name)}", allow=(404,))
        return response.status_code != 404

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /connector-plugins/{class}/config/validate``: Connect's validation report."""
        plugin = config.get("connector.class")
        if not plugin:
            raise KafkaConnectError("The connector config has no 'connector.class' to validate.")
        path = f"/connector-plugins/{_quote(str(plugin))}/config/validate"
        return dict(self.request("PUT", path, json=dict(config)).json())

    def connector_status(self, name: str) -> dict[str, Any] | None:
        """``GET /connectors/{name}/status``: connector and task states, ``None`` if unknown."""
        response = self.request("GET", f"/connectors/{_quote(name)}/status", allow=(404,))
        if response.status_code == 404:
            return None
        return dict(response.json())


def _quote(segment: str) -> str:
    return quote(segment, safe="")


def _innermost(exc: BaseException) -> BaseException:
    """The root cause of a requests/urllib3 error (``MaxRetryError.reason`` and the like)."""
    reason: Any = exc
    seen = set()
    while id(reason) not in seen:
        seen.add(id(reason))
        inner = getattr(reason, "reason", None)
        if inner is None and reason.args and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        if inner is None or not isinstance(inner, BaseException):
            break
        reason = inner
    return reason  # type: ignore[no-any-return]


def _reason(exc: BaseException) -> str:
    """The root cause as text: no object reprs, no URLs carrying credentials."""
    text = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>: ", "", str(_innermost(exc)))
    return redact_url(text)[:300]
