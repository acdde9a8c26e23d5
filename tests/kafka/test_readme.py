"""Every Python example of the package README runs with the documented import paths."""

from __future__ import annotations

import datetime as dt
import re
import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest

from django_messaging.kafka import kafka
from django_messaging.kafka.topic import Topic
from tests.project.kafka_app.models import Customer, Product

README = Path(__file__).resolve().parents[2] / "packages" / "kafka" / "README.md"
#: blocks that would start long-running consumers; the worker tests run those for real
LONG_RUNNING = ("run_consumers(", "run_consumer(")


def python_blocks() -> list[str]:
    """Python blocks outside the Kafka Connect section: those define models and need a Connect
    REST API, and tests/kafka/connect runs the same code against a local one."""
    text = README.read_text()
    start = text.index("\n## Kafka Connect\n")
    end = text.index("\n## ", start + 1)
    text = text[:start] + text[end:]
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture
def my_app(monkeypatch, create_topic):
    package = types.ModuleType("my_app")
    package.__path__ = []
    topics = types.ModuleType("my_app.topics")
    models = types.ModuleType("my_app.models")

    class Topic1(Topic):
        name = create_topic()

        def consume(self, msg):
            pass

    topics.Topic1 = Topic1
    models.MyModel, models.MyOtherModel = Product, Customer
    for name, module in (("my_app", package), ("my_app.topics", topics), ("my_app.models", models)):
        monkeypatch.setitem(sys.modules, name, module)
    return package


@pytest.mark.django_db
def test_readme_examples_run(my_app, settings):
    blocks = python_blocks()
    assert len(blocks) >= 12
    namespace: dict = {"__name__": "readme_examples"}
    ran = 0
    before = set(kafka.consumers)
    connectors, syncs = set(kafka.connectors), set(kafka.model_syncs)
    try:
        for block in blocks:
            if any(marker in block for marker in LONG_RUNNING):
                compile(block, "README.md", "exec")
                continue
            exec(compile(block, "README.md", "exec"), namespace)
            ran += 1
    finally:
        for key in set(kafka.model_syncs) - syncs:
            kafka.model_syncs.unregister(key)
        for key in set(kafka.connectors) - connectors:
            kafka.connectors.unregister(key)
        for key in set(kafka.consumers) - before:
            kafka.consumers.unregister(key)
        kafka.producer.flush(5)
    assert ran >= 10
    assert namespace["MyAppConsumer"].topics.names == [sys.modules["my_app.topics"].Topic1.name]
    assert namespace["RetryableTopic"].retry_settings.blocking is False
    assert namespace["MyModelConsumer"].reroute_model_map["public.my_model"] is Product
    value = {"title": " saw ", "legacy_code": 3, "price": None, "status": "A", "released": 1}
    assert namespace["EnrichedConsumer"]().apply_transforms(Product, {"id": 1}, value) == {
        "name": "saw",
        "price": "0.00",
        "status": "active",
        "released": dt.date(1970, 1, 2),
    }
    coded = namespace["CodedConsumer"]()
    assert coded.transform_message(Product, {"code": 1}, {"code": 1, "title": "saw"}) == (
        {"id": 1},
        {"id": 1, "name": "saw"},
    )
    assert namespace["LineByOrder"].sink.relations[0].lookup == "order__number"
    assert namespace["MyModelByRef"].enrich_id({"id": 1}, None) == "MM-1"
    assert namespace["AugmentedOrders"]().reproduce_name == "orders.augmented"
    assert namespace["MyModelIn"].get_topic() == "my-model"
    assert list(namespace["MyModelIn"].columns()) == ["id", "first_name", "email"]
    assert namespace["MyModelEnriched"].source_topic() == "public.test_kafka_product"
    assert namespace["datum"] == {
        "id": 1,
        "name": "saw",
        "price": Decimal("9.90"),
        "changed_by": None,
    }
