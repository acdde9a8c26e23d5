"""OpenTelemetry on the replica: each batch applied is a ``process`` span over real RabbitMQ
(and Kafka)."""

from __future__ import annotations

import pytest
from django.db import transaction
from opentelemetry.trace import SpanKind

from django_messaging.cqrs import publishing
from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from django_messaging.cqrs.transport import current_transport
from tests.cqrs.conftest import over_transports
from tests.outbox.helpers import drive
from tests.project.cqrs_app.models import Product, ProductRef

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@over_transports
def test_a_batch_applied_is_a_process_span(spans, cqrs_settings, wire, cqrs_transport) -> None:
    products = [Product.objects.create(name=f"traced-{i}") for i in range(3)]
    replica = current_transport().consumer_worker()
    replica.start()
    try:
        drive(
            replica,
            lambda: ProductRef.objects.filter(pk__in=[p.pk for p in products]).count() == 3,
            timeout=40,
            what="three rows replicated",
        )
    finally:
        replica.stop()
    applied = [
        s for s in spans.get_finished_spans() if s.name == f"process {cqrs_settings['queue']}"
    ]
    assert applied
    assert sum(s.attributes["messaging.batch.message_count"] for s in applied) == 3
    for span in applied:
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["messaging.system"] == cqrs_transport
        assert span.attributes["messaging.operation.type"] == "process"
        assert list(span.attributes["messaging.cqrs.ids"]) == ["product"]


def _replicate(pk: int) -> None:
    replica = current_transport().consumer_worker()
    replica.start()
    try:
        drive(
            replica,
            lambda: ProductRef.objects.filter(pk=pk).exists(),
            timeout=40,
            what="the row replicated",
        )
    finally:
        replica.stop()


@over_transports
@pytest.mark.parametrize(
    "how", ["published", "published-each", "published-pipelined", "relayed", "relayed-in-atomic"]
)
def test_a_save_traced_on_the_master_is_one_trace_to_the_replica(
    spans, cqrs_settings, wire, cqrs_transport, how, monkeypatch
) -> None:
    if how.startswith("published-"):
        cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": how.removeprefix("published-")}
    elif how != "published":
        # The process stops after the commit, before publishing: the stored row is all there is.
        monkeypatch.setattr(publishing, "publish_staged", lambda payload, using: None)
    with spans.tracer.start_as_current_span("request") as request:
        if how == "relayed-in-atomic":
            with transaction.atomic():
                product = Product.objects.create(name="traced")
        else:
            product = Product.objects.create(name="traced")
    trace_id = request.get_span_context().trace_id
    if how.startswith("relayed"):
        monkeypatch.undo()
        (stored,) = PendingMessage.objects.all()
        assert f"{trace_id:032x}" in stored.trace_context
        cqrs_settings["master"] = {"CQRS_OUTBOX_GRACE": 0}
        assert producer.flush_pending() == 1
    else:
        wait_for_confirms()
    _replicate(product.pk)
    finished = spans.get_finished_spans()
    (sent,) = [s for s in finished if s.kind is SpanKind.PRODUCER]
    assert sent.context.trace_id == trace_id
    assert sent.parent.span_id == request.get_span_context().span_id
    assert sent.attributes["messaging.system"] == cqrs_transport
    (applied,) = [s for s in finished if s.name == f"process {cqrs_settings['queue']}"]
    assert applied.context.trace_id == trace_id
    assert applied.parent.span_id == sent.context.span_id


@over_transports
def test_a_batch_links_the_traces_of_its_other_messages(
    spans, cqrs_settings, wire, cqrs_transport
) -> None:
    traces = []
    for i in range(3):
        with spans.tracer.start_as_current_span(f"request {i}") as request:
            product = Product.objects.create(name=f"linked-{i}")
        traces.append(request.get_span_context().trace_id)
    wait_for_confirms()
    _replicate(product.pk)
    applied = [
        s for s in spans.get_finished_spans() if s.name == f"process {cqrs_settings['queue']}"
    ]
    reached = {s.context.trace_id for s in applied}
    reached |= {link.context.trace_id for s in applied for link in s.links}
    assert reached == set(traces)


def test_no_trace_context_is_stored_when_tracing_is_off(cqrs_settings, monkeypatch) -> None:
    monkeypatch.setattr(publishing, "publish_staged", lambda payload, using: None)
    Product.objects.create(name="untraced")
    with transaction.atomic():
        Product.objects.create(name="untraced too")
    assert [m.trace_context for m in PendingMessage.objects.all()] == [None, None]


def test_a_delete_in_a_block_stores_its_trace_context(spans, cqrs_settings, monkeypatch) -> None:
    product = Product.objects.create(name="to delete")
    wait_for_confirms()
    monkeypatch.setattr(publishing, "publish_staged", lambda payload, using: None)
    with spans.tracer.start_as_current_span("request") as request, transaction.atomic():
        product.delete()
    (stored,) = PendingMessage.objects.filter(signal_type="DELETE")
    assert f"{request.get_span_context().trace_id:032x}" in stored.trace_context
