"""``django_messaging.core.tracing`` honours the sender's sampling decision; ``new_traces``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django_messaging.core import tracing

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def test_process_makes_a_span_only_for_a_sampled_trace(spans: Any) -> None:
    for headers in ({"traceparent": SAMPLED}, {"traceparent": UNSAMPLED}, {}, [("a", b"1")]):
        with tracing.process("kafka", "t", headers):
            pass
    with tracing.process("kafka", "batch", None):  # not one message's: always a span
        pass
    made = spans.get_finished_spans()
    assert [s.name for s in made] == ["process t", "process batch"]
    assert made[0].context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert tracing.traced([("traceparent", UNSAMPLED.encode())])
    assert not tracing.traced([("a", b"1")]) and not tracing.traced(None)


def test_new_traces_starts_a_trace_for_an_untraced_message(spans: Any) -> None:
    assert tracing.enable(new_traces=True)
    assert tracing.traced(None)
    with tracing.process("kafka", "t", {}) as span:
        assert span is not None
    assert [s.parent for s in spans.get_finished_spans()] == [None]


def test_send_all_passes_sampled_out_and_untraced_rows_on_unchanged(spans: Any) -> None:
    messages = [
        SimpleNamespace(destination="q", key=1, headers={"traceparent": SAMPLED}),
        SimpleNamespace(destination="q", key=2, headers={"traceparent": UNSAMPLED, "x": "1"}),
        SimpleNamespace(destination="q", key=3, headers={}),
    ]
    sent = tracing.send_all("rabbitmq", messages)
    assert [s.attributes["messaging.message.id"] for s in sent] == ["1"]
    assert messages[0].headers["traceparent"].split("-")[2] == f"{sent[0].context.span_id:016x}"
    assert messages[1].headers == {"traceparent": UNSAMPLED, "x": "1"}
    assert messages[2].headers == {}


def test_a_sampled_out_trace_is_current_around_the_handler(spans: Any) -> None:
    from opentelemetry import trace

    for headers in ({"traceparent": UNSAMPLED}, {"traceparent": UNSAMPLED, "tracestate": "k=v"}):
        with tracing.process("rabbitmq", "q", headers) as span:
            assert span is None
            current = trace.get_current_span().get_span_context()
            assert current.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
            assert not current.trace_flags.sampled
            assert dict(current.trace_state) == ({"k": "v"} if "tracestate" in headers else {})
        assert not trace.get_current_span().get_span_context().is_valid
    assert not spans.get_finished_spans()
