"""The load: one Django process that, at a steady rate, saves an outbox-decorated model and a CQRS
master in one ``transaction.atomic()`` block, produces a Kafka message once that block committed,
and teaches a dog of the event-sourced ``TrainingSchool`` a trick.

Run as ``python -m tests.chaos.load RATE`` with the environment the harness builds; it retries
whatever the database or a broker refuses and runs until SIGTERM.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from typing import Any

import django

logger = logging.getLogger("tests.chaos.load")
DOGS = [f"dog-{n}" for n in range(20)]


def main(rate: float) -> None:
    django.setup()
    from django.db import close_old_connections, connections, transaction

    from django_messaging.eventstore.conf import application_env
    from django_messaging.kafka import kafka
    from django_messaging.kafka.topic import TopicProducer
    from tests.project.cqrs_app.models import Product
    from tests.project.eventstore_app.domain import TrainingSchool
    from tests.project.outbox_app.models import PlainModel

    class ChaosProducer(TopicProducer):
        name = os.environ["KAFKA_APP_TOPIC_CHAOS"]
        value_serializer = "json"

    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    topic = ChaosProducer()
    school = TrainingSchool(env=application_env())
    rng = random.Random(os.getpid())
    registered: set[str] = set()
    products: list[int] = []

    def step(n: int) -> None:
        if not products:  # a restarted load process updates the products there are
            products.extend(Product.objects.values_list("pk", flat=True))
        with transaction.atomic():
            PlainModel.objects.create(field_one=f"load {n}", field_two=str(time.time()))
            if products and rng.random() < 0.7:
                product = Product.objects.select_for_update().get(pk=rng.choice(products))
                product.price += 1
                product.save()
            else:
                product = Product.objects.create(name=f"product {n}", price=n)
            seq = time.time_ns()
            transaction.on_commit(lambda: topic.produce({"seq": seq}, key=str(seq)))
        if product.pk not in products:
            products.append(product.pk)
        dog = rng.choice(DOGS)
        if dog not in registered:
            try:
                school.register(dog)
            except Exception:
                if not _exists(school, dog):  # registered by an earlier run of this process
                    raise
            registered.add(dog)
        school.add_trick(dog, f"trick {n}")

    n, errors, next_at = 0, 0, time.monotonic()
    while not stopping:
        next_at += 1.0 / rate
        close_old_connections()
        try:
            step(n)
        except Exception as exc:
            errors += 1
            if errors == 1 or errors % 50 == 0:
                logger.warning("load step %d failed (%d so far): %r", n, errors, exc)
            connections.close_all()
            time.sleep(0.2)
        n += 1
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - 1.0)  # no burst to catch up after an outage
    kafka.producer.flush()
    print(f"load stopped after {n} steps, {errors} refused", flush=True)


def _exists(school: Any, dog: str) -> bool:
    try:
        school.get_tricks(dog)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # the packages log what matters
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
