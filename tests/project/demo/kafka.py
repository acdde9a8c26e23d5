"""Kafka: a topic with a retry and a dead letter topic, and a Debezium-style model sync."""

from __future__ import annotations

import json
import time
import uuid

from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.serialization import MessageField

from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.topic import Topic
from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
from tests.project.demo.context import DemoContext
from tests.project.kafka_app.models import Product

TITLE = "kafka: produce, consume with a retry and a dead letter, sync a model"


def _read_all(bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list:
    reader = RawConsumer(
        {"bootstrap.servers": bootstrap, "group.id": f"demo-reader-{uuid.uuid4().hex[:6]}"}
    )
    reader.assign([TopicPartition(topic, 0, 0)])
    found: list = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        found += [m for m in reader.consume(100, 0.2) if m.error() is None]
    reader.close()
    return found


def run(ctx: DemoContext) -> None:
    suffix = uuid.uuid4().hex[:6]
    orders, products, group = f"demo-orders-{suffix}", f"demo-products-{suffix}", f"demo-{suffix}"
    admin = AdminClient({"bootstrap.servers": ctx.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(orders, 1), NewTopic(products, 1)]).values():
        future.result(10)
    attempts: dict[str, int] = {}
    handled: list[str] = []

    @kafka.retry(max_retries=2, delay=0.2)
    class Orders(Topic):
        name = orders
        value_serializer = "json"
        value_deserializer = "json"

        def consume(self, msg):
            order = self.deserialize(msg.value(), MessageField.VALUE, msg.headers())
            attempts[order["id"]] = attempts.get(order["id"], 0) + 1
            ctx.say(f"consume {order['id']} (attempt {attempts[order['id']]})")
            if order["id"] == "flaky" and attempts["flaky"] < 2:
                raise ConnectionError("payment service busy")
            if order["id"] == "broken":
                raise ValueError("order has no items")
            handled.append(order["id"])

    class Products(DbzModelTopicConsumer):
        name = products
        model = Product

    class DemoConsumer(Consumer):
        topics = Topics(Orders(), Products())
        config = {"group.id": group, "auto.offset.reset": "earliest"}
        polling_freq = 0.2

    # Registered as a project's consumers are: `messaging_status` reports its group's lag.
    kafka.consumers.register(DemoConsumer)
    for order_id in ("ok", "flaky", "broken", "last"):
        Orders().produce({"id": order_id, "items": 1}, key=order_id)
    products_topic = type(
        "ProductsOut",
        (Topic,),
        {"name": products, "value_serializer": "json", "key_serializer": "json"},
    )
    products_topic().produce({"id": 1, "name": "hammer", "price": "9.50"}, key={"id": 1})
    products_topic().produce({"id": 2, "name": "saw", "price": "20.00"}, key={"id": 2})
    products_topic().produce({"id": 2, "name": "saw", "__deleted": "true"}, key={"id": 2})
    kafka.producer.flush(10)
    ctx.say(f"produced 4 orders to {orders} and 3 Debezium-style records to {products}")

    consumer = DemoConsumer()
    consumer.start()
    try:
        ctx.wait_for(
            lambda: (
                consumer.run_once() or ("last" in handled and Product.objects.filter(id=1).exists())
            ),
            what="the orders and products to be consumed",
        )
    finally:
        consumer.stop()
    ctx.say(f"handled: {handled}")
    dead = _read_all(ctx.kafka_bootstrap, f"{group}.{orders}.dlt", 1)
    headers = dict(dead[0].headers())
    ctx.say(
        f"dead letter in {group}.{orders}.dlt: key={dead[0].key().decode()} "
        f"value={json.loads(dead[0].value())} error={headers['EXCEPTION_CLASS'].decode()}: "
        f"{headers['EXCEPTION_MESSAGE'].decode()} after {headers['RETRY_ATTEMPT'].decode()} retries"
    )
    rows = list(Product.objects.filter(id__in=[1, 2]).values_list("id", "name", "price"))
    ctx.say(f"products synced from the Debezium topic: {rows}")
    if (
        handled != ["ok", "flaky", "last"]
        or attempts["broken"] != 3
        or [r[:2] for r in rows] != [(1, "hammer")]
    ):
        raise RuntimeError(f"kafka demo: unexpected outcome {handled} {attempts} {rows}")
    Product.objects.filter(id__in=[1, 2]).delete()
    kafka.reset_clients()  # flush and close the producer while the broker is still up
