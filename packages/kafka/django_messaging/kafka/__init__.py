"""Kafka topics, consumers, retries, dead letters, model sync, Avro and Kafka Connect for Django.

``from django_messaging.kafka import kafka`` is the process-wide entry point, as in django-kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import autodiscover_modules

from django_messaging.core.worker import WorkerFactory, run_workers
from django_messaging.kafka.clients import shared
from django_messaging.kafka.producer import Producer
from django_messaging.kafka.registry import ConnectorsRegistry, ConsumersRegistry, Registry
from django_messaging.kafka.retry.settings import RetrySettings
from django_messaging.kafka.sync_registry import ModelSyncRegistry, model_syncs

__version__ = "0.1.0"

logger = logging.getLogger(__name__)


class DjangoKafka:
    """Registries of consumers and connectors, and the shared clients of this process.

    ``producer`` and ``schema_client`` are built on first use from the settings of that moment,
    and rebuilt after the settings change (``override_settings``) and in a forked child
    (:mod:`django_messaging.kafka.clients`).
    """

    consumers: Registry[Any] = ConsumersRegistry()
    connectors: ConnectorsRegistry[Any] = ConnectorsRegistry()
    #: ``ModelSync`` declarations (``django_messaging.kafka.models.model_sync``).
    model_syncs: ModelSyncRegistry = model_syncs

    @property
    def retry(self) -> type[RetrySettings]:
        """``@kafka.retry(max_retries, delay, backoff=False, include=None, exclude=None, blocking=True)``."""
        return RetrySettings

    @property
    def producer(self) -> Producer:
        return shared.producer

    @property
    def schema_client(self) -> Any:
        return shared.schema_client

    def reset_clients(self) -> None:
        """Forget the producer and schema registry client (flushing the producer first)."""
        shared.reset()

    def run_consumer(self, consumer_key: str) -> None:
        """Run one registered consumer in this process until SIGTERM/SIGINT."""
        self.consumers[consumer_key]().run()

    def consumer_factories(
        self, consumers: Sequence[str] | None = None, workers: int = 1
    ) -> list[WorkerFactory]:
        """``workers`` factories per registered consumer (all of them by default): a
        :class:`RegisteredConsumer` each."""
        keys = list(consumers) if consumers else list(self.consumers)
        for key in keys:
            self.consumers[key]  # an unknown key raises here, not in a worker process
        return [RegisteredConsumer(key) for key in keys for _ in range(workers)]

    def run_consumers(
        self,
        consumers: Sequence[str] | None = None,
        workers: int = 1,
        start_method: str | None = None,
    ) -> int:
        """Run registered consumers (all by default), ``workers`` processes of each, under the
        core supervisor; returns the exit code (0 after SIGTERM, 1 when a consumer kept
        crashing). ``start_method``: see :func:`django_messaging.core.worker.run_workers`."""
        factories = self.consumer_factories(consumers, workers)
        if not factories:
            logger.debug("no consumers to run")
            return 0
        return run_workers(factories, start_method=start_method)


@dataclass(frozen=True)
class RegisteredConsumer:
    """Builds the consumer registered under ``key``, looked up when called: a worker process
    started with ``spawn`` or ``forkserver`` imports the project afresh, and finds the key in the
    registry its apps filled (the generated ``.retry`` consumers included)."""

    key: str

    def __call__(self) -> Any:
        return kafka.consumers[self.key]()


def autodiscover() -> None:
    """Import the ``consumers``, ``connectors`` and ``model_syncs`` modules of every installed
    app (and their ``kafka.`` twins), then register the consumers that ``ModelSync`` Python
    sinks run on."""
    autodiscover_modules(
        "consumers",
        "connectors",
        "model_syncs",
        "kafka.consumers",
        "kafka.connectors",
        "kafka.model_syncs",
    )
    register_sync_consumers()


def register_sync_consumers() -> None:
    """Register (under their dotted path) the consumers the Python sinks of the registered
    ``ModelSync`` classes name, when no ``@kafka.consumers()`` did, so ``kafka_consume`` runs
    them."""
    from django.utils.module_loading import import_string

    for path in model_syncs.consumer_paths():
        if path not in kafka.consumers:
            kafka.consumers.register(import_string(path))


kafka = DjangoKafka()

__all__ = ["DjangoKafka", "RegisteredConsumer", "autodiscover", "kafka", "register_sync_consumers"]
