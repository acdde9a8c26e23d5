"""A transport that publishes nothing: for tests of master code that must not reach a broker."""

from __future__ import annotations

from typing import Any

from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.transport.base import BaseTransport


class TransportMock(BaseTransport):
    produced: list[TransportPayload] = []

    @staticmethod
    def produce(payload: TransportPayload) -> TransportPayload:  # type: ignore[override]
        TransportMock.produced.append(payload)
        return payload

    @staticmethod
    def consume(*args: Any, **kwargs: Any) -> None:
        return None
