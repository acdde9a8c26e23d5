"""A consumer in ``<app>/kafka/consumers.py``, the second place autodiscovery looks."""

from __future__ import annotations

import os

from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer, Topics
from tests.project.kafka_app.consumers import FileTopic


@kafka.consumers()
class NestedFileConsumer(Consumer):
    topics = Topics(FileTopic(os.environ.get("KAFKA_APP_TOPIC_4", "kafka-app-topic-4")))
    config = {
        "group.id": os.environ.get("KAFKA_APP_GROUP_4", "kafka-app-group-4"),
        "auto.offset.reset": "earliest",
    }
