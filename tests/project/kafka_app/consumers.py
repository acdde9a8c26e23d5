"""Consumers of the test project, found by autodiscovery.

The worker tests run ``kafka_consume`` in subprocesses and configure these consumers through
the environment: ``KAFKA_APP_TOPIC``/``KAFKA_APP_GROUP`` (and ``..._2`` for the second
consumer), ``KAFKA_APP_OUTPUT`` (a file each handled value is appended to) and
``KAFKA_APP_CRASH_MARKER`` (a message ``crash`` kills the process once, while that file
does not exist yet), ``KAFKA_APP_SLOW`` (seconds each message takes). ``RowConsumer``
(``KAFKA_APP_TOPIC_4``/``KAFKA_APP_GROUP_4``) also writes a row per message
(``KAFKA_APP_IDEMPOTENT``, ``KAFKA_APP_COMMIT_MS``: see there).
"""

from __future__ import annotations

import os
import time

from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.topic import TopicConsumer


class FileTopic(TopicConsumer):
    atomic = False

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def consume(self, msg):
        value = msg.value().decode()
        marker = os.environ.get("KAFKA_APP_CRASH_MARKER")
        if value == "crash" and marker and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(3)
        pause = float(os.environ.get("KAFKA_APP_SLOW", "0"))
        if pause:
            time.sleep(pause)  # a handler doing real work, so a kill lands mid-stream
        output = os.environ.get("KAFKA_APP_OUTPUT")
        if output:
            with open(output, "a") as fh:
                fh.write(f"{os.getpid()} {msg.topic()} {msg.partition()} {msg.offset()} {value}\n")


@kafka.consumers()
class FileConsumer(Consumer):
    topics = Topics(FileTopic(os.environ.get("KAFKA_APP_TOPIC", "kafka-app-topic")))
    config = {
        "group.id": os.environ.get("KAFKA_APP_GROUP", "kafka-app-group"),
        "auto.offset.reset": "earliest",
    }


@kafka.consumers()
class SecondFileConsumer(Consumer):
    topics = Topics(FileTopic(os.environ.get("KAFKA_APP_TOPIC_2", "kafka-app-topic-2")))
    config = {
        "group.id": os.environ.get("KAFKA_APP_GROUP_2", "kafka-app-group-2"),
        "auto.offset.reset": "earliest",
    }


class FailOnceTopic(FileTopic):
    """Fails a message ``fail-once`` the first time (while ``KAFKA_APP_CRASH_MARKER`` is absent)."""

    def consume(self, msg):
        marker = os.environ.get("KAFKA_APP_CRASH_MARKER")
        if msg.value() == b"fail-once" and marker and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("failing once on purpose")
        super().consume(msg)


@kafka.consumers()
class RetryingFileConsumer(Consumer):
    topics = Topics(
        kafka.retry(max_retries=2, delay=0.2, blocking=False)(FailOnceTopic)(
            os.environ.get("KAFKA_APP_TOPIC_3", "kafka-app-topic-3")
        )
    )
    config = {
        "group.id": os.environ.get("KAFKA_APP_GROUP_3", "kafka-app-group-3"),
        "auto.offset.reset": "earliest",
    }


class RowTopic(FileTopic):
    """Writes a ``Handled`` row per message in the default transaction (``ATOMIC``), then
    appends it to the output file; a value starting with ``fail`` raises after its write.
    ``KAFKA_APP_IDEMPOTENT=1`` makes it idempotent."""

    atomic = None
    idempotent = os.environ.get("KAFKA_APP_IDEMPOTENT") == "1" or None

    def consume(self, msg):
        from tests.project.kafka_app.models import Handled

        value = msg.value().decode()
        Handled.objects.create(topic=msg.topic(), value=value)
        super().consume(msg)
        if value.startswith("fail"):
            raise RuntimeError("failing after a write on purpose")


@kafka.consumers()
class RowConsumer(Consumer):
    topics = Topics(RowTopic(os.environ.get("KAFKA_APP_TOPIC_4", "kafka-app-topic-4")))
    config = {
        "group.id": os.environ.get("KAFKA_APP_GROUP_4", "kafka-app-group-4"),
        "auto.offset.reset": "earliest",
        # KAFKA_APP_COMMIT_MS: librdkafka's auto-commit interval (rare commits leave handled
        # messages uncommitted for a kill to catch)
        "auto.commit.interval.ms": int(os.environ.get("KAFKA_APP_COMMIT_MS", "5000")),
    }


class ChaosTopic(FileTopic):
    """The chaos soak's handler: ``{"seq": n}`` becomes a ``Handled`` row (``value`` = n) in the
    default transaction; anything else raises, so garbage goes to the dead letter topic.
    Idempotent: a message redelivered after a kill is skipped, not applied twice."""

    atomic = None
    idempotent = True

    def consume(self, msg):
        import json

        from tests.project.kafka_app.models import Handled

        body = json.loads(msg.value())
        if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
            raise ValueError("not a chaos message: expected {'seq': <int>}")
        Handled.objects.create(topic=msg.topic(), value=str(body["seq"]))


if os.environ.get("KAFKA_APP_TOPIC_CHAOS"):  # only the chaos soak's processes

    @kafka.consumers()
    class ChaosConsumer(Consumer):
        topics = Topics(ChaosTopic(os.environ["KAFKA_APP_TOPIC_CHAOS"]))
        config = {
            "group.id": os.environ.get("KAFKA_APP_GROUP_CHAOS", "kafka-app-chaos"),
            "auto.offset.reset": "earliest",
        }
