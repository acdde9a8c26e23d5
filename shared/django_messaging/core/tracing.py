"""OpenTelemetry tracing of every package, through one small module.

Install the extra (``pip install "django-messaging[otel]"``, which brings ``opentelemetry-api``),
configure a tracer provider as usual (the SDK, an exporter), then call :func:`enable` once, in an
``AppConfig.ready()`` or at the top of a worker's settings. Until then every function here does
nothing, and hot paths skip even the call by testing :data:`enabled` first.

Spans follow the OpenTelemetry messaging semantic conventions: ``send <destination>`` (kind
``PRODUCER``) when a message is handed to the broker (a Kafka produce, an outbox row sent by the
relay), ``process <destination>`` (kind ``CONSUMER``) around a handler (a Kafka topic's
``consume``, an outbox subscriber callback, a batch of CQRS messages applied), with
``messaging.system``, ``messaging.destination.name``, ``messaging.operation.type`` and
``messaging.operation.name``, and the message id, partition, offset or consumer group where
known.

The W3C trace context (``traceparent``, ``tracestate``) goes into the message headers: an outbox
row stores the context of the transaction that wrote it, the relay's ``send`` span continues
that trace and puts its own context in the message, and the subscriber's ``process`` span is its
child, so one trace runs from the request that saved the model to the callback that handled it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["begin_send", "disable", "enable", "enabled", "extract", "inject", "process", "send_all"]

#: True once :func:`enable` succeeded; callers on hot paths test it before calling.
enabled = False

_tracer: Any = None
_propagator: Any = None
_lock = threading.Lock()

TRACE_HEADERS = ("traceparent", "tracestate")


def enable(tracer_provider: Any = None) -> bool:
    """Start tracing with ``tracer_provider`` (default: the global one); ``False`` (and nothing
    changes) when ``opentelemetry-api`` is missing. Calling it again changes nothing."""
    global enabled, _tracer, _propagator
    with _lock:
        if enabled:
            return True
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:
            return False
        _tracer = trace.get_tracer("django_messaging", tracer_provider=tracer_provider)
        _propagator = TraceContextTextMapPropagator()
        enabled = True
        return True


def disable() -> None:
    """Stop tracing (messages sent from now on carry no trace context)."""
    global enabled
    with _lock:
        enabled = False


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _carrier(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    """The trace headers of a message's headers (a dict, or Kafka's list of pairs)."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {k: _text(v) for k, v in pairs if k in TRACE_HEADERS and v is not None}


def inject(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """``headers`` (a new dict when ``None``) with the current span's ``traceparent`` and
    ``tracestate``; unchanged when tracing is off or there is no current span."""
    headers = {} if headers is None else headers
    if enabled:
        _propagator.inject(headers)
    return headers


def extract(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> Any:
    """The OpenTelemetry context carried by a message's headers (``None`` when off)."""
    if not enabled:
        return None
    return _propagator.extract(_carrier(headers))


def _attributes(system: str, destination: str, operation: str, extra: Mapping[str, Any]) -> dict:
    attributes = {
        "messaging.system": system,
        "messaging.destination.name": destination,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    attributes.update({k: v for k, v in extra.items() if v is not None})
    return attributes


def begin_send(system: str, destination: str, headers: Any) -> tuple[Any, Any]:
    """Start a ``send`` span, child of the current one, for a client call that cannot run inside
    a ``with``; returns the span (end it with ``span.end()``) and ``headers`` (a dict, a list of
    pairs or ``None``) with the span's context added."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    span = _tracer.start_span(
        f"send {destination}",
        kind=SpanKind.PRODUCER,
        attributes=_attributes(system, destination, "send", {}),
    )
    extra: dict[str, str] = {}
    _propagator.inject(extra, context=trace.set_span_in_context(span))
    if headers is None:
        return span, list(extra.items())
    if isinstance(headers, Mapping):
        return span, {**headers, **extra}
    return span, [*(h for h in headers if h[0] not in extra), *extra.items()]


def send_all(system: str, messages: Sequence[Any]) -> list[Any]:
    """One ended ``send`` span per relay message (each continuing the trace its headers carry);
    each message's headers get that span's context. The relay calls it before writing."""
    if not enabled:
        return []
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    spans = []
    for message in messages:
        span = _tracer.start_span(
            f"send {message.destination}",
            context=extract(message.headers),
            kind=SpanKind.PRODUCER,
            attributes=_attributes(
                system, message.destination, "send", {"messaging.message.id": str(message.key)}
            ),
        )
        for name in TRACE_HEADERS:
            message.headers.pop(name, None)
        _propagator.inject(message.headers, context=trace.set_span_in_context(span))
        span.end()
        spans.append(span)
    return spans


@contextlib.contextmanager
def process(
    system: str,
    destination: str,
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    **attributes: Any,
) -> Iterator[Any]:
    """A ``process`` span around a handler, child of the context the message's ``headers``
    carry; an exception escaping the handler is recorded on it. Yields the span (``None`` when
    tracing is off)."""
    if not enabled:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        f"process {destination}",
        context=extract(headers),
        kind=SpanKind.CONSUMER,
        attributes=_attributes(system, destination, "process", attributes),
    ) as span:
        yield span
