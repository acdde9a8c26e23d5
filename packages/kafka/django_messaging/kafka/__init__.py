"""Kafka topics, consumers, retries, dead letters, model sync, Avro and Kafka Connect for Django.

``from django_messaging.kafka import kafka`` is the process-wide entry point, as in django-kafka.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import autodiscover_modules

from django_messaging.kafka.registry import ConnectorsRegistry, ConsumersRegistry, Registry

if TYPE_CHECKING:
    from django_messaging.kafka.producer import Producer

__version__ = "0.1.0"

logger = logging.getLogger(__name__)


class DjangoKafka:
    """Registries of consumers and connectors, and the shared clients of this process.

    ``producer`` and ``schema_client`` are built on first use from the settings of that moment,
    and rebuilt after the settings change (``override_settings``) and in a forked child.
    """

    consumers: Registry[Any] = ConsumersRegistry()
    connectors: ConnectorsRegistry[Any] = ConnectorsRegistry()

    _producer: Producer | None = None
    _schema_client: Any = None
    _flush_at_exit_registered = False

    @property
    def retry(self) -> Any:
        """``@kafka.retry(max_retries, delay, backoff=False, include=None, exclude=None, blocking=True)``."""
        from django_messaging.kafka.retry.settings import RetrySettings

        return RetrySettings

    @property
    def producer(self) -> Producer:
        producer = self._producer
        if producer is None:
            from django_messaging.kafka.producer import Producer

            producer = self._producer = Producer()
            if not self._flush_at_exit_registered:
                atexit.register(self._flush_at_exit)
                type(self)._flush_at_exit_registered = True
        return producer

    def _flush_at_exit(self) -> None:
        """Deliver what is still queued when the interpreter exits (a script or a management
        command that produced and returned), waiting at most ``DELIVERY_TIMEOUT`` seconds."""
        producer = self._producer
        if producer is None or not len(producer):
            return
        from django_messaging.kafka.conf import settings

        try:
            remaining = producer.flush(float(settings.DELIVERY_TIMEOUT))
        except Exception:  # pragma: no cover - a client already torn down
            logger.exception("flush of the Kafka producer at exit failed")
            return
        if remaining:
            logger.error("%d Kafka message(s) not delivered when the process exited", remaining)

    @property
    def schema_client(self) -> Any:
        client = self._schema_client
        if client is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            from django_messaging.kafka.conf import settings
            from django_messaging.kafka.exceptions import DjangoKafkaError

            config = settings.SCHEMA_REGISTRY
            if not config:
                raise DjangoKafkaError(
                    "MESSAGING['KAFKA']['SCHEMA_REGISTRY'] is empty; set at least {'url': ...}."
                )
            client = self._schema_client = SchemaRegistryClient.new_client(dict(config))
        return client

    def reset_clients(self) -> None:
        """Forget the producer and schema registry client (flushing the producer first)."""
        producer, self._producer = self._producer, None
        self._schema_client = None
        if producer is not None:
            try:
                producer.flush(5)
            except Exception:  # pragma: no cover - a closing client
                logger.debug("flush of the old producer failed", exc_info=True)
        from django_messaging.kafka import delivery
        from django_messaging.kafka.topic import clear_serializer_caches

        delivery.reset()
        clear_serializer_caches()

    def _forget_after_fork(self) -> None:
        # A forked child must not use its parent's librdkafka threads.
        self._producer = None
        self._schema_client = None
        from django_messaging.kafka import delivery
        from django_messaging.kafka.topic import clear_serializer_caches

        delivery.reset()
        clear_serializer_caches()

    def run_consumer(self, consumer_key: str) -> None:
        """Run one registered consumer in this process until SIGTERM/SIGINT."""
        self.consumers[consumer_key]().run()

    def run_consumers(self, consumers: Sequence[str] | None = None) -> int:
        """Run registered consumers (all by default), each in its own process, under the core
        supervisor; returns the exit code (0 after SIGTERM, 1 when a consumer kept crashing)."""
        from django_messaging.core.worker import run_workers

        keys = list(consumers) if consumers else list(self.consumers)
        if not keys:
            logger.debug("no consumers to run")
            return 0
        classes = [self.consumers[key] for key in keys]
        return run_workers(classes)


def autodiscover() -> None:
    """Import ``consumers``/``connectors`` modules of every installed app (and their ``kafka.`` twins)."""
    autodiscover_modules("consumers", "connectors", "kafka.consumers", "kafka.connectors")


kafka = DjangoKafka()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=kafka._forget_after_fork)

__all__ = ["DjangoKafka", "autodiscover", "kafka"]
