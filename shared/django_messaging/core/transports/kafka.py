"""The Kafka transport (confluent-kafka), for the relay and any package that sends through the
core seam.

Each :class:`~django_messaging.core.transports.OutgoingMessage` becomes one record of the topic
named by its ``destination``: its ``body`` is the value, ``raw_key`` (else ``ordering_key``
encoded as UTF-8) the key, and ``raw_headers`` (else ``headers``) the headers, byte for byte and
in order. A message is confirmed when its delivery report says the broker wrote it; a delivery
error rejects that message alone. The producer is idempotent (``enable.idempotence``), so
librdkafka's own retries neither duplicate nor reorder records.

A topic that does not exist is reported, not created behind the user's back: the messages to it
are rejected with an error naming it, unless ``create_topics`` is set, in which case the topic
is created (``topic_partitions`` partitions) before the first message goes to it.

confluent-kafka is imported when a transport opens: install it with
``pip install "django-messaging[confluent-kafka]"``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Mapping, Sequence
from functools import partial
from typing import Any

from django_messaging.core.exceptions import MessagingError
from django_messaging.core.settings import messaging_dict
from django_messaging.core.transports.base import Confirmations, OutgoingMessage, Transport

__all__ = ["KafkaTransport", "kafka_settings_config"]

logger = logging.getLogger(__name__)
client_logger = logging.getLogger(f"{__name__}.client")

#: Producer defaults under every configuration given: records are written once and in order.
PRODUCER_DEFAULTS: dict[str, Any] = {"enable.idempotence": True, "linger.ms": 5}
#: Configuration keys an admin client (topic creation) understands.
_ADMIN_PREFIXES = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "socket.")


class KafkaTransportError(MessagingError):
    """The Kafka broker cannot be reached or the client cannot be built."""


def kafka_settings_config() -> dict[str, Any]:
    """``MESSAGING["KAFKA"]``'s ``GLOBAL_CONFIG`` updated with its ``PRODUCER_CONFIG``: the
    producer configuration a project already declared for its Kafka topics."""
    section = messaging_dict().get("KAFKA")
    if not isinstance(section, Mapping):
        return {}
    config: dict[str, Any] = {}
    for key in ("GLOBAL_CONFIG", "PRODUCER_CONFIG"):
        part = section.get(key)
        if isinstance(part, Mapping):
            config.update(part)
    return config


class KafkaTransport(Transport):
    """Sends to Kafka topics; confirmation = the record's delivery report."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        create_topics: bool = False,
        topic_partitions: int = 1,
        timeout: float = 10.0,
    ) -> None:
        self.config = {**PRODUCER_DEFAULTS, **config}
        self.create_topics = create_topics
        self.topic_partitions = topic_partitions
        #: Seconds to wait for metadata and topic creation.
        self.timeout = timeout
        self._producer: Any = None
        self._topics: set[str] = set()
        self._lock = threading.Lock()
        self._confirmed: list[Hashable] = []
        self._rejected: list[Hashable] = []
        self._errors: list[str] = []
        self._fatal: str | None = None
        self._pending: set[Hashable] = set()

    def __repr__(self) -> str:
        return f"<KafkaTransport {self.config.get('bootstrap.servers')!r}>"

    # Transport -----------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        from confluent_kafka import KafkaException, Producer

        config = dict(self.config)
        config.setdefault("error_cb", self._on_error)
        config.setdefault("logger", client_logger)  # librdkafka's lines through logging
        self._fatal = None
        try:
            producer = Producer(config)
            metadata = producer.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise KafkaTransportError(
                f"cannot reach Kafka at {self.config.get('bootstrap.servers')!r}: {exc}"
            ) from exc
        self._topics = set(metadata.topics)
        self._producer = producer

    def is_open(self) -> bool:
        return self._producer is not None and self._fatal is None

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        # What is still queued must not be written after this: a later send of the same rows
        # would then be overtaken by these.
        try:
            producer.purge()
            producer.flush(1.0)
        except Exception:  # pragma: no cover - a client already torn down
            logger.debug("purge of the Kafka producer failed", exc_info=True)
        with self._lock:
            self._pending.clear()

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        """Produce ``messages``; each is confirmed by its delivery report, and a refusal (a
        missing topic, a record the client refuses as too large) or a failed delivery rejects
        that record alone. The lock is taken once for the batch, one delivery handler serves
        it (each record reports its index), and a list of ``raw_headers`` goes to the client as
        given, so a caller can encode constant headers once. ``headers`` are encoded as
        UTF-8."""
        producer = self._producer
        if producer is None or self._fatal is not None:
            return [m.key for m in messages]
        if not messages:
            return []
        missing = {m.destination for m in messages} - self._topics
        unknown = self._ensure_topics(missing) if missing else {}
        report = _Batch(self, messages).report
        produce = producer.produce
        with self._lock:
            self._pending.update(m.key for m in messages)
        for index, message in enumerate(messages):
            destination = message.destination
            if unknown and destination in unknown:
                self._reject(message.key, unknown[destination])
                continue
            key = message.raw_key
            if key is None and message.ordering_key is not None:
                key = message.ordering_key.encode()
            headers: Any = message.raw_headers
            if headers is None:
                headers = [(name, value.encode()) for name, value in message.headers.items()]
            elif type(headers) is not list:  # the client takes a list (or a dict), no tuple
                headers = list(headers)
            on_delivery = partial(report, index)
            try:
                try:
                    produce(
                        destination, message.body, key, headers=headers, on_delivery=on_delivery
                    )
                except BufferError:  # the local queue is full: let some records go, then again
                    producer.poll(1.0)
                    produce(
                        destination, message.body, key, headers=headers, on_delivery=on_delivery
                    )
            except Exception as exc:  # a record the client refuses (too large...)
                self._reject(message.key, f"Kafka refused the message to {destination!r}: {exc}")
        producer.poll(0)
        return []

    def _reject(self, key: Hashable, error: str) -> None:
        with self._lock:
            self._pending.discard(key)
            self._rejected.append(key)
            self._errors.append(error)

    def _ensure_topics(self, names: set[str]) -> dict[str, str]:
        """Look the topics up again (created since?); create them when asked. Returns the
        names that do not exist with the reason."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            self._topics = set(self._producer.list_topics(timeout=self.timeout).topics)
        except KafkaException as exc:
            logger.warning("cannot refresh the Kafka topic list: %s", exc)
        missing = names - self._topics
        if not missing:
            return {}
        if not self.create_topics:
            return {
                name: f"Kafka topic {name!r} does not exist: create it, or let the transport "
                "create missing topics (CREATE_TOPICS)"
                for name in missing
            }
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({k: v for k, v in self.config.items() if k.startswith(_ADMIN_PREFIXES)})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=self.topic_partitions) for name in sorted(missing)],
            operation_timeout=self.timeout,
            request_timeout=self.timeout,
        )
        failed: dict[str, str] = {}
        for name, future in futures.items():
            try:
                future.result(self.timeout)
                logger.info("created Kafka topic %s (%d partitions)", name, self.topic_partitions)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    failed[name] = f"cannot create Kafka topic {name!r}: {exc}"
                    continue
            self._topics.add(name)
        return failed

    def poll(self, timeout: float) -> Confirmations:
        producer = self._producer
        result = Confirmations()
        if producer is not None:
            with self._lock:
                ready = bool(self._confirmed or self._rejected)
            producer.poll(0 if ready else timeout)
        with self._lock:
            result.confirmed, self._confirmed = self._confirmed, []
            result.rejected, self._rejected = self._rejected, []
            errors, self._errors = self._errors, []
            if self._fatal is not None:
                result.lost, result.error = True, self._fatal
                self._pending.clear()
        if errors and result.error is None:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            result.error = errors[0] + more  # logged by the caller (the relay), once
        return result

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            # An idempotent producer that lost its state (a broker restarted from scratch):
            # it must be built again; what it did not confirm is sent again.
            self._fatal = f"fatal Kafka producer error: {error}"
            logger.error("%s", self._fatal)
        else:
            logger.debug("Kafka client error: %s", error)


class _Batch:
    """The delivery handler of one :meth:`KafkaTransport.send`: record ``index`` of the batch
    reports through :meth:`report`."""

    __slots__ = ("messages", "transport")

    def __init__(self, transport: KafkaTransport, messages: Sequence[OutgoingMessage]) -> None:
        self.transport = transport
        self.messages = messages

    def report(self, index: int, error: Any, record: Any) -> None:
        message = self.messages[index]
        transport = self.transport
        with transport._lock:
            if message.key not in transport._pending:
                return
            transport._pending.discard(message.key)
            if error is None:
                transport._confirmed.append(message.key)
            else:
                transport._rejected.append(message.key)
                transport._errors.append(f"delivery to {message.destination!r} failed: {error}")
