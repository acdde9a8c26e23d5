"""The Kafka clients one process shares: the producer, the admin client and the Schema Registry
client; and how consumers build theirs.

They are built on first use from the settings of that moment. ``shared.reset()`` (the settings
changed) flushes and forgets them, and a forked child forgets its parent's; modules that cache
something built from them (serializers, known topics) register a hook with ``on_reset``, so
this module depends on none of them. ``kafka.producer`` and ``kafka.schema_client`` are these.

:meth:`SharedClients.pin` puts stand-ins in their place until unpinned, whatever the settings
do meanwhile: the in-memory broker of :mod:`django_messaging.kafka.testing` uses it.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka.admin import AdminClient

from django_messaging.kafka.conf import settings
from django_messaging.kafka.config import admin_config
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.producer import Producer

__all__ = ["SharedClients", "shared"]

logger = logging.getLogger(__name__)


class SharedClients:
    def __init__(self) -> None:
        self._producer: Producer | None = None
        self._admin: Any = None
        self._schema_client: Any = None
        #: Stand-ins set by :meth:`pin`: "producer", "admin", "consumer" (a client factory).
        self._pinned: dict[str, Any] = {}
        self._reset_hooks: list[Callable[[], None]] = []
        self._flush_at_exit_registered = False

    @property
    def producer(self) -> Producer:
        producer = self._producer
        if producer is None:
            producer = self._producer = Producer()
            if not self._flush_at_exit_registered:
                atexit.register(self._flush_at_exit)
                self._flush_at_exit_registered = True
        return producer

    @property
    def built_producer(self) -> Producer | None:
        """The producer if it was built, without building one."""
        return self._producer

    @property
    def admin(self) -> AdminClient:
        """The admin client (topic creation of retry and dead letter copies)."""
        admin = self._admin
        if admin is None:
            admin = self._admin = AdminClient(admin_config())
        return admin  # type: ignore[no-any-return]

    def consumer_client(self, config: dict[str, Any]) -> Any:
        """A new librdkafka consumer for a :class:`~django_messaging.kafka.consumer.Consumer`."""
        factory = self._pinned.get("consumer")
        return ConfluentConsumer(config) if factory is None else factory(config)

    def pin(
        self,
        producer: Producer | None = None,
        admin: Any = None,
        consumer: Callable[[dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Use these clients (``consumer``: a factory of consumer clients) instead of building
        them, across :meth:`reset`, until :meth:`unpin`; returns what was pinned before."""
        before = dict(self._pinned)
        built = self._producer
        if built is not None and "producer" not in before and producer is not None:
            built.flush(5)  # what it still queues goes to the broker it was built for
        self._pinned = {
            name: value
            for name, value in {"producer": producer, "admin": admin, "consumer": consumer}.items()
            if value is not None
        }
        self._apply_pins()
        self._run_reset_hooks()
        return before

    def unpin(self, previous: dict[str, Any] | None = None) -> None:
        """Build real clients again (or pin ``previous``, what :meth:`pin` returned)."""
        self._pinned = dict(previous or {})
        self._producer = None
        self._admin = None
        self._apply_pins()
        self._run_reset_hooks()

    def _apply_pins(self) -> None:
        if "producer" in self._pinned:
            self._producer = self._pinned["producer"]
        if "admin" in self._pinned:
            self._admin = self._pinned["admin"]

    @property
    def schema_client(self) -> Any:
        client = self._schema_client
        if client is None:
            # Imported on first use: the schema registry client brings an HTTP stack (some
            # 300 modules) that processes without Avro topics never need.
            from confluent_kafka.schema_registry import SchemaRegistryClient

            config = settings.SCHEMA_REGISTRY
            if not config:
                raise DjangoKafkaError(
                    "MESSAGING['KAFKA']['SCHEMA_REGISTRY'] is empty; set at least {'url': ...}."
                )
            client = self._schema_client = SchemaRegistryClient.new_client(dict(config))
        return client

    def on_reset(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` whenever the clients are forgotten (it drops what it built from them)."""
        self._reset_hooks.append(hook)
        return hook

    def reset(self) -> None:
        """Forget the producer, admin and schema registry clients (flushing the producer
        first); pinned clients stay."""
        producer, self._producer = self._producer, None
        self._admin = None
        self._schema_client = None
        self._apply_pins()
        if producer is not None and producer is not self._producer:
            try:
                producer.flush(5)
            except Exception:  # pragma: no cover - a closing client
                logger.debug("flush of the old producer failed", exc_info=True)
        self._run_reset_hooks()

    def forget_after_fork(self) -> None:
        # A forked child must not use its parent's librdkafka threads.
        self._producer = None
        self._admin = None
        self._schema_client = None
        self._apply_pins()
        self._run_reset_hooks()

    def _run_reset_hooks(self) -> None:
        for hook in self._reset_hooks:
            hook()

    def _flush_at_exit(self) -> None:
        """Deliver what is still queued when the interpreter exits (a script or a management
        command that produced and returned), waiting at most ``DELIVERY_TIMEOUT`` seconds."""
        producer = self._producer
        if producer is None or not len(producer):
            return
        try:
            remaining = producer.flush(float(settings.DELIVERY_TIMEOUT))
        except Exception:  # pragma: no cover - a client already torn down
            logger.exception("flush of the Kafka producer at exit failed")
            return
        if remaining:
            logger.error("%d Kafka message(s) not delivered when the process exited", remaining)


shared = SharedClients()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=shared.forget_after_fork)
