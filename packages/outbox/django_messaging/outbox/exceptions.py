"""Errors of the outbox package; all derive from the core ``MessagingError``."""

from __future__ import annotations

from django_messaging.core.exceptions import MessagingError


class OutboxError(MessagingError):
    """Base class of the outbox package's errors."""


class ExceededSendAttemptsException(OutboxError):
    """A direct send failed ``attempts`` times in a row (``MAXIMUM_RETRY_ATTEMPTS``)."""

    def __init__(self, attempts: int, last_error: BaseException | None = None) -> None:
        self.attempts = attempts
        self.last_error = last_error
        detail = f": {last_error}" if last_error else ""
        super().__init__(
            f"gave up after {attempts} failed send attempts{detail}. Check that the broker in "
            "STOMP_HOST_AND_PORTS is reachable and accepts the credentials."
        )


class TransportError(OutboxError):
    """The broker connection failed or refused a frame."""


class CallbackContractError(OutboxError):
    """A subscriber callback returned without calling ``payload.save()`` or ``payload.nack()``."""
