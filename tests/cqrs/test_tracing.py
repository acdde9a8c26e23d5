"""OpenTelemetry on the replica: each batch applied is a ``process`` span over real RabbitMQ
(and Kafka)."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

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
