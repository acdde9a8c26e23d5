"""Direct sends without the outbox table: ``factory_producer().send_event(...)``.

    with factory_producer() as producer:
        producer.send_event(destination="/topic/orders.v1", body={"id": 1}, headers={"x": "1"})

A send returns once the broker confirmed the message (STOMP receipt). Failures are retried:
the first three at once (reconnecting), then after ``PAUSE_FOR_RETRY`` seconds, then
every ``WAIT_RETRY`` seconds, until ``MAXIMUM_RETRY_ATTEMPTS`` failures raise
:class:`ExceededSendAttemptsException`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django_messaging.core.serializers import get_serializer
from django_messaging.core.transports import OutgoingMessage, Transport
from django_messaging.outbox.conf import settings
from django_messaging.outbox.correlation import CORRELATION_ID_HEADER, new_correlation_id
from django_messaging.outbox.exceptions import ExceededSendAttemptsException
from django_messaging.outbox.transports.stomp import StompTransport

logger = logging.getLogger(__name__)


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures (the documented policy)."""
    if failures < 3:
        return 0.0
    if failures == 3:
        return float(settings.PAUSE_FOR_RETRY)
    return float(settings.WAIT_RETRY)


def encode_body(body: Any) -> tuple[bytes, str]:
    serializer = get_serializer(settings.BODY_SERIALIZER)
    return serializer.dumps(body), getattr(serializer, "content_type", "application/json")


def generate_headers_function() -> Any:
    return settings.imported("GENERATE_HEADERS")


def message_headers(message: Any, generate: Any = None) -> dict[str, str]:
    """Stored headers of an outbox row, then the generated ones (which win), but for the
    stored ``dop-correlation-id``, the one header a caller may set."""
    generated = (generate or generate_headers_function())(message)
    stored = message.headers if isinstance(getattr(message, "headers", None), dict) else None
    merged = {**stored, **generated} if stored else generated
    if stored and CORRELATION_ID_HEADER in stored:
        merged[CORRELATION_ID_HEADER] = stored[CORRELATION_ID_HEADER]
    return {str(k): str(v) for k, v in merged.items()}


class Producer:
    def __init__(self, transport: Transport | None = None) -> None:
        self.transport = transport or StompTransport()

    def start(self) -> None:
        if not self.transport.is_open():
            self.transport.open()

    def stop(self) -> None:
        self.transport.close()

    def is_connected(self) -> bool:
        return self.transport.is_open()

    def __enter__(self) -> Producer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send(self, message: Any, **overrides: Any) -> int:
        """Send an outbox row (``Published``) with its generated headers; return the number of
        failed attempts before it was confirmed."""
        body, content_type = encode_body(message.body)
        return self._send_with_retry(
            OutgoingMessage(
                key=str(message.id),
                destination=overrides.get("destination", message.destination),
                body=body,
                headers={**message_headers(message), **overrides.get("headers", {})},
                content_type=content_type,
            )
        )

    def send_event(
        self, destination: str, body: Any, headers: dict[str, Any] | None = None, **kw: Any
    ) -> int:
        """Send ``body`` to ``destination`` now; return the failed attempts before success."""
        data, content_type = encode_body(body)
        extra = {str(k): str(v) for k, v in {**(headers or {}), **kw}.items()}
        extra.setdefault("dop-msg-id", str(uuid.uuid4()))
        extra.setdefault(CORRELATION_ID_HEADER, new_correlation_id())
        return self._send_with_retry(
            OutgoingMessage(
                key=extra["dop-msg-id"],
                destination=destination,
                body=data,
                headers=extra,
                content_type=content_type,
            )
        )

    def _send_with_retry(self, message: OutgoingMessage) -> int:
        failures = 0
        maximum = settings.MAXIMUM_RETRY_ATTEMPTS
        timeout = float(settings.RECEIPT_TIMEOUT)
        while True:
            error: Any = None
            try:
                self.start()
                result = self.transport.send_batch([message], lambda keys: None, timeout)
                if not result.unconfirmed:
                    return failures
                error = result.error
                self.transport.close()
            except Exception as exc:
                error = exc
                self.transport.close()
            failures += 1
            logger.warning(
                "send to %s failed (attempt %d of %d): %s",
                message.destination,
                failures,
                maximum,
                error,
            )
            if failures >= maximum:
                raise ExceededSendAttemptsException(
                    failures, error if isinstance(error, BaseException) else Exception(str(error))
                )
            time.sleep(retry_delay(failures))
