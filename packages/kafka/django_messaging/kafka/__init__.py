"""Kafka topics, consumers, retries, dead letters, model sync, Avro and Kafka Connect for Django.

``from django_messaging.kafka import kafka`` is the process-wide entry point, as in django-kafka.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import autodiscover_modules

from django_messaging.kafka.registry import ConnectorsRegistry, Registry

__version__ = "0.1.0"


class DjangoKafka:
    """Registries of consumers and connectors, and the shared clients of this process."""

    consumers: Registry[Any] = Registry()
    connectors: ConnectorsRegistry[Any] = ConnectorsRegistry()


def autodiscover() -> None:
    """Import ``consumers``/``connectors`` modules of every installed app (and their ``kafka.`` twins)."""
    autodiscover_modules("consumers", "connectors", "kafka.consumers", "kafka.connectors")


kafka = DjangoKafka()

__all__ = ["DjangoKafka", "autodiscover", "kafka"]
