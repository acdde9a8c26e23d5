"""Errors of the CQRS package."""

from __future__ import annotations

from django_messaging.core.exceptions import MessagingError


class CQRSError(MessagingError):
    """Base class of the CQRS package's errors."""


class PayloadError(CQRSError):
    """A message cannot be applied whatever the number of retries (bad shape, unknown id)."""


class PublishError(CQRSError):
    """The broker did not confirm a message."""
