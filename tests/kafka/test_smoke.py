from __future__ import annotations

from django_messaging.kafka.topic import Topic
from tests.kafka.conftest import make_consumer, make_topic, run_until


def test_produce_and_consume(create_topic, group):
    name = create_topic()
    seen: list[str] = []

    def consume(self, msg):
        seen.append(self.deserialize(msg.value(), "value"))

    T = make_topic(Topic, name, atomic=False, consume=consume)
    for i in range(5):
        T().produce(f"m{i}")
    from django_messaging.kafka import kafka

    kafka.producer.flush(5)
    consumer = make_consumer(group, T(), join=True)()  # the documented subscribe() flow
    run_until(consumer, lambda: len(seen) >= 5)
    assert seen == [f"m{i}" for i in range(5)]
