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

Sampling: a trace is decided where it starts (the request, the caller of ``produce``), and the
workers honour that decision at the price of reading one header. A message whose
``traceparent`` has the *sampled* flag gets its ``send`` or ``process`` span, child of the
sender's. A message whose trace was sampled out gets no span: its context is made current around
the handler (so what the handler sends stays in the same, unsampled, trace) and the relay passes
its headers on unchanged. A message that carries no trace context starts no trace unless
:func:`enable` is called with ``new_traces=True`` (then each such message gets a root span and the
tracer provider's sampler decides). Creating an SDK span costs several microseconds, more than a
Kafka consumer spends on a message, which is why the default traces only what was asked for.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "begin_send",
    "disable",
    "enable",
    "enabled",
    "extract",
    "inject",
    "process",
    "send_all",
    "traced",
]

#: True once :func:`enable` succeeded; callers on hot paths test it before calling.
enabled = False

#: True when a message without trace context starts a new trace (see :func:`enable`): with it
#: off, a traced hot path may skip a message whose headers are ``None`` without a call.
starts_new_traces = False

_tracer: Any = None
_propagator: Any = None
_lock = threading.Lock()

TRACE_HEADERS = ("traceparent", "tracestate")


def enable(tracer_provider: Any = None, *, new_traces: bool = False) -> bool:
    """Start tracing with ``tracer_provider`` (default: the global one); ``False`` (and nothing
    changes) when ``opentelemetry-api`` is missing. Calling it again changes nothing but
    ``new_traces``: with ``True``, a message that carries no trace context gets a root span
    (subject to the provider's sampler) instead of none."""
    global enabled, starts_new_traces, _tracer, _propagator
    with _lock:
        if enabled:
            starts_new_traces = new_traces
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
        starts_new_traces = new_traces
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


def _traceparent(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> Any:
    """The ``traceparent`` value of a message's headers (``None`` when absent)."""
    if not headers:
        return None
    if isinstance(headers, Mapping):
        return headers.get("traceparent")
    for key, value in headers:
        if key == "traceparent":
            return value
    return None


def _sampled(traceparent: Any) -> bool:
    """Whether a ``traceparent`` (``00-<trace id>-<span id>-<flags>``) has the sampled flag,
    read from its last hex digit without building a context. A malformed value counts as
    sampled: the propagator then decides (it drops an invalid one: a new trace)."""
    try:
        return bool(int(traceparent[-1:], 16) & 1)
    except (TypeError, ValueError):
        return True


def _remote_context(traceparent: Any, headers: Any, sampled: bool) -> Any:
    """The context a ``traceparent`` carries, built directly (the propagator's parsing costs
    more than the rest of a Kafka message's handling); through the propagator when the value is
    not of the common form or a ``tracestate`` comes with it."""
    from opentelemetry import trace

    parts = _text(traceparent).split("-")
    if (
        len(parts) != 4
        or parts[0] != "00"
        or len(parts[1]) != 32
        or len(parts[2]) != 16
        or _tracestate(headers)
    ):
        return extract(headers)
    try:
        span_context = trace.SpanContext(
            int(parts[1], 16),
            int(parts[2], 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(1 if sampled else 0),
        )
    except ValueError:
        return extract(headers)
    if not span_context.is_valid:
        return extract(headers)
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def _tracestate(headers: Any) -> bool:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return any(k == "tracestate" for k, _ in pairs)


def traced(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> bool:
    """Whether :func:`process` does anything for a message with these headers: tracing is on
    and the message carries trace context, or :func:`enable` asked for ``new_traces``. Hot
    paths call it to skip :func:`process` (and building its attributes) for the rest."""
    return enabled and (starts_new_traces or _traceparent(headers) is not None)


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
        traceparent = message.headers.get("traceparent") if message.headers else None
        if traceparent is None:
            if not starts_new_traces:
                continue  # no trace to continue: the message goes without one
        elif not _sampled(traceparent):
            continue  # sampled out where it started: its headers pass on unchanged
        span = _tracer.start_span(
            f"send {message.destination}",
            context=(
                extract(message.headers)  # none carried: a new trace
                if traceparent is None
                else _remote_context(traceparent, message.headers, sampled=True)
            ),
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
    *,
    batch: bool = False,
    **attributes: Any,
) -> Iterator[Any]:
    """A ``process`` span around a handler, child of the context the message's ``headers``
    carry; an exception escaping the handler is recorded on it. Yields the span, or ``None``
    when tracing is off or no span is made: ``headers`` whose trace was sampled out, or that carry
    none while ``new_traces`` is off (see the module's doc). ``headers=None`` means the span is
    not one message's: it is made, the root of a new trace. ``batch=True``: one span for a
    batch of messages, always made, child of ``headers``' context (the sampler decides)."""
    if not enabled:
        yield None
        return
    traceparent = None if batch else _traceparent(headers)
    if traceparent is None:
        if headers is not None and not starts_new_traces and not batch:
            yield None  # no trace to continue, and none to start
            return
    elif not _sampled(traceparent):
        # Sampled out where the trace started: no span, but the trace stays current so what the
        # handler sends carries the same (unsampled) decision.
        from opentelemetry import context as otel_context

        token = otel_context.attach(_remote_context(traceparent, headers, sampled=False))
        try:
            yield None
        finally:
            otel_context.detach(token)
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        f"process {destination}",
        context=(
            extract(headers)  # none carried: a new trace
            if traceparent is None
            else _remote_context(traceparent, headers, sampled=True)
        ),
        kind=SpanKind.CONSUMER,
        attributes=_attributes(system, destination, "process", attributes),
    ) as span:
        yield span
