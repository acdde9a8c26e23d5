"""The named transports of ``MESSAGING["OUTBOX"]["TRANSPORTS"]``: which broker each outbox row
goes to.

    "TRANSPORTS": {
        "default": {"BACKEND": "stomp"},             # STOMP_* settings; implied
        "events": {"BACKEND": "kafka", "OPTIONS": {"bootstrap.servers": "kafka:9092"}},
        "rabbit": {"BACKEND": "amqp", "OPTIONS": {"url": "amqp://…", "exchange": "orders"}},
    }

``BACKEND`` is ``stomp``, ``kafka``, ``amqp`` or the dotted path of a callable returning a
:class:`~django_messaging.core.transports.Transport` (called with ``OPTIONS`` as keyword
arguments). ``kafka``: ``OPTIONS`` is the librdkafka producer configuration, over
``MESSAGING["KAFKA"]``'s ``GLOBAL_CONFIG`` and ``PRODUCER_CONFIG``; ``CREATE_TOPICS`` (default
``False``) creates a missing topic with ``TOPIC_PARTITIONS`` (default 1) partitions instead of
rejecting its messages. ``amqp``: ``OPTIONS`` are the arguments of
:class:`~django_messaging.core.transports.amqp.AmqpTransport` (``url``, ``exchange``...).
``stomp`` takes no ``OPTIONS``. ``default`` is always there: a STOMP transport unless defined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.module_loading import import_string

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.transports import Transport
from django_messaging.outbox.conf import settings

DEFAULT = "default"
BUILTIN = ("stomp", "kafka", "amqp")
#: The keys a transport's entry may have.
ENTRY_KEYS = ("BACKEND", "OPTIONS", "CREATE_TOPICS", "TOPIC_PARTITIONS")


def configured() -> dict[str, Mapping[str, Any]]:
    """Every transport by name, ``default`` included."""
    transports: dict[str, Mapping[str, Any]] = {DEFAULT: {"BACKEND": "stomp"}}
    declared = settings.TRANSPORTS
    if isinstance(declared, Mapping):
        transports.update(declared)
    return transports


def backend_of(name: str) -> str:
    entry = configured().get(name)
    if entry is None:
        raise ConfigurationError(unknown(name))
    return str(entry.get("BACKEND", ""))


def unknown(name: str) -> str:
    return (
        f"the outbox transport {name!r} is not defined; known: "
        f"{', '.join(sorted(configured()))}. Add it to MESSAGING['OUTBOX']['TRANSPORTS']."
    )


def make_transport(name: str) -> Transport:
    """A new, not yet open, transport for the rows that name ``name``."""
    entry = configured().get(name)
    if entry is None:
        raise ConfigurationError(unknown(name))
    backend = entry.get("BACKEND")
    options = dict(entry.get("OPTIONS") or {})
    if backend == "stomp":
        from django_messaging.outbox.transports.stomp import StompTransport

        return StompTransport()
    if backend == "kafka":
        from django_messaging.core.transports.kafka import KafkaTransport, kafka_settings_config

        return KafkaTransport(
            {**kafka_settings_config(), **options},
            create_topics=bool(entry.get("CREATE_TOPICS", False)),
            topic_partitions=int(entry.get("TOPIC_PARTITIONS", 1)),
        )
    if backend == "amqp":
        from django_messaging.core.transports.amqp import AmqpTransport

        return AmqpTransport(**options)
    if not isinstance(backend, str):
        raise ConfigurationError(f"the outbox transport {name!r} has no BACKEND")
    factory = import_string(backend)
    transport = factory(**options)
    if not isinstance(transport, Transport):
        raise ConfigurationError(
            f"the BACKEND {backend!r} of the outbox transport {name!r} returned "
            f"{type(transport).__name__}, not a Transport"
        )
    return transport


def problems() -> list[str]:
    """What is wrong with ``TRANSPORTS`` (for the system checks)."""
    found: list[str] = []
    declared = settings.TRANSPORTS
    if not isinstance(declared, Mapping):
        return ["must be a dict of name -> {'BACKEND': ..., 'OPTIONS': {...}}"]
    for name, entry in declared.items():
        where = f"[{name!r}]"
        if not isinstance(entry, Mapping):
            found.append(f"{where} must be a dict with a 'BACKEND'")
            continue
        extra = set(entry) - set(ENTRY_KEYS)
        if extra:
            found.append(f"{where} has unknown keys {sorted(extra)}; known: {list(ENTRY_KEYS)}")
        backend = entry.get("BACKEND")
        options = entry.get("OPTIONS", {})
        if not isinstance(options, Mapping):
            found.append(f"{where}['OPTIONS'] must be a dict")
        if not isinstance(backend, str) or not backend:
            found.append(f"{where} needs a 'BACKEND': one of {list(BUILTIN)} or a dotted path")
        elif backend == "stomp" and options:
            found.append(f"{where}: the stomp backend takes no OPTIONS (it reads STOMP_*)")
        elif backend not in BUILTIN:
            try:
                import_string(backend)
            except ImportError as exc:
                found.append(
                    f"{where}['BACKEND'] {backend!r} is not one of {list(BUILTIN)} and cannot "
                    f"be imported: {exc}"
                )
        if backend != "kafka" and ("CREATE_TOPICS" in entry or "TOPIC_PARTITIONS" in entry):
            found.append(f"{where}: CREATE_TOPICS and TOPIC_PARTITIONS are for the kafka backend")
        if backend == "kafka" and isinstance(options, Mapping):
            from django_messaging.core.transports.kafka import kafka_settings_config

            if not {**kafka_settings_config(), **options}.get("bootstrap.servers"):
                found.append(
                    f"{where}: no 'bootstrap.servers' in OPTIONS nor in "
                    "MESSAGING['KAFKA']['GLOBAL_CONFIG']"
                )
    return found
