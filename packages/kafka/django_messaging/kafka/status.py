"""Kafka figures for ``manage.py messaging_status`` and the Prometheus gauges: the lag of every
registered consumer's group on every partition of its topics, the broker's high watermark minus
the group's committed offset (minus the low watermark where the group committed nothing yet).

One short-lived client per group reads the committed offsets; it never joins the group, so a
running consumer is not disturbed.
"""

from __future__ import annotations

from typing import Any

from django_messaging.core.status import Figure, Kind, Unreachable
from django_messaging.kafka.registry import Registry


def _groups(consumers: Registry[Any]) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """group id -> (client config, topic consumers) of the registered consumers."""
    groups: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for key in consumers:
        cls = consumers[key]
        config = cls.build_config()
        group = config.get("group.id")
        if group:
            groups.setdefault(str(group), (config, []))[1].extend(cls.topics)
    return groups


def lag_figures(timeout: float) -> list[Figure]:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from django_messaging.kafka import kafka

    figures = []
    for group, (config, topics) in _groups(kafka.consumers).items():
        client = Consumer({**config, "enable.auto.commit": False})
        where = f"Kafka at {config.get('bootstrap.servers') or '(no bootstrap.servers)'}"
        try:
            try:
                metadata = client.list_topics(timeout=timeout)
            except KafkaException as exc:
                raise Unreachable(f"{where}: {exc.args[0] if exc.args else exc}") from exc
            names = sorted(n for n in metadata.topics if any(t.matches(n) for t in topics))
            partitions = [
                TopicPartition(name, p)
                for name in names
                for p in sorted(metadata.topics[name].partitions)
            ]
            if not partitions:
                continue
            try:
                committed = client.committed(partitions, timeout=timeout)
                for tp in committed:
                    low, high = client.get_watermark_offsets(tp, timeout=timeout, cached=False)
                    lag = high - tp.offset if tp.offset >= 0 else high - low
                    labels = (
                        ("group", group),
                        ("topic", tp.topic),
                        ("partition", str(tp.partition)),
                    )
                    figures.append(
                        Figure(
                            "kafka",
                            "kafka_consumer_lag",
                            Kind.LAG,
                            max(0, lag),
                            labels,
                            help="messages of a partition the consumer group has not committed",
                        )
                    )
            except KafkaException as exc:
                raise Unreachable(f"{where}: {exc.args[0] if exc.args else exc}") from exc
        finally:
            client.close()
    return figures
