"""stomp.py connections from ``MESSAGING["OUTBOX"]``: build, connect with a deadline, close,
and the back-off between reconnects.

Every call reads the settings afresh, so ``override_settings`` applies to the next connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django_messaging.core.reconnect import Backoff
from django_messaging.outbox.conf import settings

logger = logging.getLogger(__name__)


#: Seconds to wait for the socket and then for the broker's CONNECTED frame.
CONNECT_TIMEOUT = 10.0


def host_and_ports() -> list[tuple[str, int]]:
    return [(str(host), int(port)) for host, port in settings.STOMP_HOST_AND_PORTS]


def factory_connection(*, auto_decode: bool = True, heartbeats: bool = True) -> Any:
    """A new, not yet connected, stomp.py connection (``CONNECTION_CLASS``).

    Hosts are tried in ``STOMP_HOST_AND_PORTS`` order (failover); stomp.py's own
    reconnect loop is limited to one pass, the callers back off themselves.
    """
    connection_class = settings.imported("CONNECTION_CLASS")
    hosts = host_and_ports()
    connection = connection_class(
        host_and_ports=hosts,
        heartbeats=tuple(settings.STOMP_HEARTBEATS) if heartbeats else (0, 0),
        vhost=settings.STOMP_VHOST,
        reconnect_attempts_max=1,
        reconnect_sleep_initial=0.05,
        reconnect_sleep_jitter=0.0,
        auto_decode=auto_decode,
        timeout=CONNECT_TIMEOUT,  # the socket's connect and reads
    )
    if settings.STOMP_USE_SSL:
        ssl: dict[str, Any] = {
            "for_hosts": hosts,
            "key_file": settings.STOMP_KEY_FILE,
            "cert_file": settings.STOMP_CERT_FILE,
            "ca_certs": settings.STOMP_CA_CERTS,
            "password": settings.STOMP_SSL_PASSWORD,
        }
        validator = settings.STOMP_CERT_VALIDATOR
        if validator is not None:
            ssl["cert_validator"] = settings.imported("STOMP_CERT_VALIDATOR")
        if settings.STOMP_SSL_VERSION is not None:
            ssl["ssl_version"] = settings.STOMP_SSL_VERSION
        connection.set_ssl(**ssl)
    return connection


def connect(
    connection: Any, timeout: float | None = None, stopped: Callable[[], bool] | None = None
) -> None:
    """CONNECT with the configured credentials and wait up to ``timeout`` (default
    :data:`CONNECT_TIMEOUT`) seconds for CONNECTED, or until ``stopped()`` is true.

    stomp.py's own wait has no deadline: a broker that accepts the socket but never answers (one
    that is still starting, or a stuck proxy) would hold the caller, and its SIGTERM, forever.
    """
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    connection.connect(settings.STOMP_USERNAME, settings.STOMP_PASSCODE)
    transport = connection.transport
    deadline = time.monotonic() + timeout
    while not connection.is_connected():
        if transport.connection_error or not transport.running:
            disconnect(connection)
            raise ConnectionError("the broker refused or closed the connection")
        if time.monotonic() >= deadline:
            disconnect(connection)
            raise TimeoutError(f"no CONNECTED frame from the broker within {timeout:g}s")
        if stopped is not None and stopped():
            disconnect(connection)
            raise InterruptedError("stop requested while waiting for the broker's CONNECTED")
        time.sleep(0.005)


def disconnect(connection: Any) -> None:
    """Close ``connection`` without waiting on a broker that may be gone: DISCONNECT when it is
    connected, otherwise drop the socket (which ends stomp.py's reader thread)."""
    try:
        if connection.is_connected():
            connection.disconnect()
        else:
            connection.transport.disconnect_socket()
    except Exception:
        logger.debug("error while closing a stomp connection", exc_info=True)


def reconnect_backoff() -> Backoff:
    """The wait between reconnects (and database checks) of the relay and the subscriber:
    about a second first, doubling up to ``MAXIMUM_BACKOFF``."""
    cap = float(settings.MAXIMUM_BACKOFF)
    return Backoff(initial=min(1.0, cap), cap=cap)
