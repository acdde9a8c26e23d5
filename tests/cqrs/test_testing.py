"""``django_messaging.cqrs.testing`` against RabbitMQ: one scenario, run through the real
transport and replica consumer and through ``CqrsBroker`` in memory, gives the same result."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import TestCase

from django_messaging.core import suppress
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.testing import CqrsBroker
from django_messaging.testing import committed
from tests.cqrs.conftest import drain
from tests.helpers import readme_section
from tests.project.cqrs_app.models import Author, AuthorRef, Poison, PoisonRef, Product, ProductRef


def scenario() -> None:
    """Create, update twice in one transaction, a rolled-back save, a suppressed save, a
    message the replica refuses, a delete."""
    desk = Product.objects.create(name="desk")
    with transaction.atomic():
        desk.name = "big desk"
        desk.save()
        desk.save()
    try:
        with transaction.atomic():
            Product.objects.create(name="rolled back")
            raise RuntimeError
    except RuntimeError:
        pass
    with suppress(["product"]):
        Product.objects.create(name="quiet")
    Poison.objects.create(name="poison-1")
    chair = Product.objects.create(name="chair")
    chair.delete()


def replica_state() -> dict[str, Any]:
    return {
        "products": sorted(ProductRef.objects.values_list("name", "cqrs_revision")),
        "poison": list(PoisonRef.objects.values_list("name", flat=True)),
    }


def _fast_retries(cqrs: dict) -> None:
    cqrs.setdefault("replica", {})
    cqrs["replica"] = {**cqrs["replica"], "CQRS_MAX_RETRIES": 1, "CQRS_RETRY_DELAY": 0.2}


def _dead_letters(channel: Any, queue: str) -> list[tuple[str, Any, str]]:
    found = []
    while True:
        _method, props, body = channel.basic_get(queue, auto_ack=True)
        if body is None:
            return sorted(found)
        data = json.loads(body)
        found.append((data["cqrs_id"], data["instance_pk"], props.headers["x-cqrs-error"]))


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_same_result_in_memory_and_through_rabbitmq(cqrs_settings, broker) -> None:
    _fast_retries(cqrs_settings)
    scenario()
    dlq = f"dead_letter_{cqrs_settings['queue']}"
    drain(
        lambda: (
            ProductRef.objects.filter(name="big desk").exists()
            and broker.queue_declare(queue=dlq, passive=True).method.message_count == 1
        ),
        what="replicated and dead-lettered",
    )
    real = replica_state()
    real_dead = _dead_letters(broker, dlq)
    real_poison = Poison.objects.get().pk

    for model in (Product, ProductRef, Poison, PoisonRef, PendingMessage):
        model.objects.all().delete()
    with CqrsBroker() as memory_broker:
        scenario()
        memory_broker.deliver()
    memory = replica_state()
    memory_dead = sorted(
        (m.value.cqrs_id, m.value.pk, m.headers["x-cqrs-error"]) for m in memory_broker.dead_letters
    )
    memory_poison = Poison.objects.get().pk

    assert real == memory == {"products": [("big desk", 1)], "poison": []}
    # The same dead letter, each for its run's own row.
    assert [pk for _, pk, _ in real_dead] == [real_poison]
    assert [pk for _, pk, _ in memory_dead] == [memory_poison]
    assert (
        without_pk(real_dead)
        == without_pk(memory_dead)
        == [("poison", "cqrs_id='poison' pk=? revision=0: SAVE failed: RuntimeError")]
    )


def without_pk(dead: list[tuple[str, Any, str]]) -> list[tuple[str, str]]:
    return [(cqrs_id, reason.replace(f"pk={pk}", "pk=?")) for cqrs_id, pk, reason in dead]


@pytest.mark.django_db
def test_messages_go_out_at_the_commit_of_the_test_transaction() -> None:
    with CqrsBroker() as broker:
        with committed(), transaction.atomic():
            author = Author.objects.create(name="Ann")
            assert len(broker.published) == 0  # not before the commit
        payload = broker.assert_published("author", pk=author.pk, signal="SAVE", name="Ann")
        assert payload.signal_type is SignalType.SAVE
        assert broker.payloads[0].pk == author.pk
        assert broker.deliver() == 1
        assert AuthorRef.objects.get(pk=author.pk).name == "Ann"
        with pytest.raises(AssertionError, match="published: SAVE author"):
            broker.assert_published("author", pk=author.pk, name="Bob")


class CqrsTestCaseTests(TestCase):
    def test_sync_through_the_replica(self) -> None:
        with CqrsBroker() as broker:
            with committed():
                product = Product.objects.create(name="lamp")
                product.cqrs_sync()
            product.cqrs_sync()  # its commit never comes: never published
            with committed():
                Product.objects.filter(pk=product.pk).update(name="lamp 2")
                Product.objects.get(pk=product.pk).cqrs_sync()
            broker.deliver()
        self.assertEqual(ProductRef.objects.get(pk=product.pk).name, "lamp 2")
        self.assertEqual(
            [m.value.signal_type for m in broker.published],
            [SignalType.SAVE, SignalType.SYNC, SignalType.SYNC],
        )


@pytest.mark.django_db
def test_the_pytest_fixture(messaging_cqrs: CqrsBroker) -> None:
    with committed():
        product = Product.objects.create(name="pen")
    messaging_cqrs.assert_published("product", pk=product.pk, signal="SAVE", name="pen")
    assert messaging_cqrs.deliver() == 1
    assert ProductRef.objects.get(pk=product.pk).name == "pen"


@pytest.mark.django_db
def test_the_readme_example_runs(monkeypatch) -> None:
    app = types.ModuleType("my_app")
    app.__path__ = []  # type: ignore[attr-defined]
    models = types.ModuleType("my_app.models")
    models.Author, models.AuthorRef = Author, AuthorRef  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_app", app)
    monkeypatch.setitem(sys.modules, "my_app.models", models)
    example = readme_section(Path(__file__).resolve().parents[2] / "packages/cqrs/README.md")
    with CqrsBroker() as broker:
        example["test_an_author_replicates"](broker, None)
    example["AuthorTests"]("test_a_rename_replicates").test_a_rename_replicates()
