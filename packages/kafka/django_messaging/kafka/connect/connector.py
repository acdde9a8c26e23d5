"""``Connector``: one Kafka Connect connector declared in Python.

    from django_messaging.kafka import kafka
    from django_messaging.kafka.connect.connector import Connector

    @kafka.connectors()
    class OrdersSource(Connector):
        config = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector", ...}

The connector's name in Connect is its class name, prefixed by ``CONNECTOR_NAME_PREFIX``
(``"<prefix>.OrdersSource"``); set ``name = "orders-source"`` on the class to choose another
base name (the prefix still applies). ``mark_for_removal = True`` makes ``kafka_connect --publish``
delete the connector instead of publishing it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from django_messaging.kafka.conf import settings
from django_messaging.kafka.exceptions import DjangoKafkaError, KafkaConnectError
from django_messaging.kafka.sync_registry import model_syncs

if TYPE_CHECKING:
    from django_messaging.kafka.connect.client import KafkaConnectClient


class ConnectorStatus(enum.StrEnum):
    """States of a connector or a task, as the Connect status endpoint reports them."""

    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FAILED = "FAILED"
    RESTARTING = "RESTARTING"
    STOPPED = "STOPPED"


#: States a connector passes through on its way to RUNNING: worth waiting for.
TRANSIENT_STATES = frozenset({ConnectorStatus.UNASSIGNED, ConnectorStatus.RESTARTING})


def _state(value: Any) -> ConnectorStatus | str:
    try:
        return ConnectorStatus(str(value))
    except ValueError:
        return str(value)


@dataclass
class TaskState:
    id: int
    state: ConnectorStatus | str
    trace: str = ""


@dataclass
class ConnectorState:
    """What ``GET /connectors/{name}/status`` said: the connector's state and its tasks'."""

    name: str
    state: ConnectorStatus | str
    tasks: list[TaskState] = field(default_factory=list)
    trace: str = ""

    @classmethod
    def from_response(cls, name: str, body: dict[str, Any]) -> ConnectorState:
        connector = body.get("connector") or {}
        tasks = [
            TaskState(
                id=int(task.get("id", index)),
                state=_state(task.get("state")),
                trace=str(task.get("trace") or ""),
            )
            for index, task in enumerate(body.get("tasks") or [])
        ]
        return cls(
            name=name,
            state=_state(connector.get("state")),
            tasks=tasks,
            trace=str(connector.get("trace") or ""),
        )

    @property
    def failed_tasks(self) -> list[TaskState]:
        return [task for task in self.tasks if task.state == ConnectorStatus.FAILED]

    @property
    def healthy(self) -> bool:
        """The connector and every one of its tasks are RUNNING."""
        return self.state == ConnectorStatus.RUNNING and all(
            task.state == ConnectorStatus.RUNNING for task in self.tasks
        )

    @property
    def settling(self) -> bool:
        """Still on its way: unassigned, restarting, or running with tasks not yet started."""
        if self.state in TRANSIENT_STATES:
            return True
        if self.state != ConnectorStatus.RUNNING:
            return False
        return not self.tasks or any(task.state in TRANSIENT_STATES for task in self.tasks)

    def describe(self) -> str:
        tasks = ", ".join(f"task {t.id} {t.state}" for t in self.tasks) or "no tasks"
        text = f"{self.state} ({tasks})"
        traces = [self.trace] if self.trace else []
        traces += [f"task {t.id}: {t.trace}" for t in self.failed_tasks if t.trace]
        if traces:
            text += "; " + "; ".join(_first_line(trace) for trace in traces)
        return text


def _first_line(trace: str) -> str:
    return trace.strip().splitlines()[0][:300] if trace.strip() else ""


@dataclass
class ValidationResult:
    """Connect's verdict on a config: the errors per config key (never the values)."""

    error_count: int
    errors: dict[str, list[str]]

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> ValidationResult:
        errors: dict[str, list[str]] = {}
        for item in body.get("configs") or []:
            value = item.get("value") or {}
            if value.get("errors"):
                errors[str(value.get("name"))] = [str(e) for e in value["errors"]]
        return cls(error_count=int(body.get("error_count") or 0), errors=errors)

    @property
    def valid(self) -> bool:
        return self.error_count == 0 and not self.errors

    def describe(self) -> str:
        lines = [f"{key}: {'; '.join(messages)}" for key, messages in self.errors.items()]
        if not lines and self.error_count:
            lines = [f"{self.error_count} error(s) reported without details"]
        return "; ".join(lines)


class Name:
    """Descriptor of ``Connector.name``: ``[CONNECTOR_NAME_PREFIX.]<base>``, read live."""

    def __init__(self, base: str | None = None) -> None:
        self.base = base

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr = name

    def __get__(self, instance: Any, owner: type) -> str:
        base = self.base or owner.__name__
        prefix = settings.CONNECTOR_NAME_PREFIX
        return f"{prefix}.{base}" if prefix else base


class Connector:
    """A connector's config and its lifecycle in Kafka Connect (submit, validate, delete, status).

    Subclasses set ``config`` (a dict, or a property computing one) and optionally ``name`` and
    ``mark_for_removal``. The client is built from the ``CONNECT_*`` settings on first use.
    """

    name: ClassVar[str] = Name()  # type: ignore[assignment]
    mark_for_removal: ClassVar[bool] = False
    config: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("name")
        if isinstance(own, str):
            cls.name = Name(own)  # type: ignore[assignment]

    @classmethod
    def dotted_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @cached_property
    def client(self) -> KafkaConnectClient:
        # Imported here: requests is needed by the Connect calls only, not by every process
        # that imports the project's connectors.
        from django_messaging.kafka.connect.client import KafkaConnectClient

        host = settings.CONNECT_HOST
        if not host:
            raise DjangoKafkaError(
                "MESSAGING['KAFKA']['CONNECT_HOST'] is not set: set it to the URL of the "
                "Kafka Connect REST API, e.g. 'http://connect:8083'.",
                context=self,
            )
        return KafkaConnectClient(
            host=host,
            auth=settings.CONNECT_AUTH,
            retry=settings.CONNECT_RETRY,
            timeout=_timeout(settings.CONNECT_REQUESTS_TIMEOUT),
        )

    @property
    def final_config(self) -> dict[str, Any]:
        """``config`` with the ``ModelSync`` sources that join this connector merged in
        (``DbzPostgresSource(connector=...)`` or ``MODEL_SYNC_SOURCE_CONNECTOR``)."""
        config = self.config
        if not isinstance(config, dict):
            raise DjangoKafkaError(
                f"{self.dotted_path()}.config must be a dict of connector settings, "
                f"got {type(config).__name__}.",
                context=self,
            )
        merged = dict(config)
        for sync, source in model_syncs.sources_for(type(self)):
            source.setup(sync, merged)
        return merged

    def get_config(self) -> dict[str, Any]:
        """The config sent to Connect: :attr:`final_config` plus ``name`` (Connect's
        validation needs it)."""
        config = self.final_config
        if "name" in config and config["name"] != self.name:
            raise DjangoKafkaError(
                f"{self.dotted_path()}.config['name'] is {config['name']!r} but the connector is "
                f"named {self.name!r}; remove 'name' from config (or set the class's name).",
                context=self,
            )
        return {**config, "name": self.name}

    def submit(self) -> dict[str, Any]:
        """Create or update the connector; Connect's answer (``name``, ``config``, ``tasks``,
        ``type``), as django-kafka returns it."""
        return self._put_config().json()  # type: ignore[no-any-return]

    def create_or_update(self) -> bool:
        """Create or update the connector; ``True`` when it was created."""
        return self._put_config().status_code == 201

    def _put_config(self) -> Any:
        return self.client.update_or_create(self.name, self.get_config())

    def delete(self) -> bool:
        """Delete the connector; ``False`` when Connect did not have it."""
        return self.client.delete(self.name)

    def validate(self) -> ValidationResult:
        """Ask Connect to validate the config (``error_count`` is what counts, not the HTTP 200)."""
        return ValidationResult.from_response(self.client.validate(self.get_config()))

    def is_valid(self, raise_exception: bool = False) -> bool:
        result = self.validate()
        if not result.valid and raise_exception:
            raise DjangoKafkaError(
                f"Connector {self.name!r} has an invalid config: {result.describe()}",
                context=result,
            )
        return result.valid

    def state(self) -> ConnectorState | None:
        """Connector and task states; ``None`` when Connect has no such connector."""
        body = self.client.connector_status(self.name)
        return None if body is None else ConnectorState.from_response(self.name, body)

    def status(self) -> ConnectorStatus | str | None:
        """The connector's own state (``RUNNING``...); ``None`` when it does not exist."""
        state = self.state()
        return None if state is None else state.state


def _timeout(value: Any) -> float | tuple[float, float]:
    if isinstance(value, tuple | list):
        return (float(value[0]), float(value[1]))
    return float(value)


__all__ = [
    "Connector",
    "ConnectorState",
    "ConnectorStatus",
    "KafkaConnectError",
    "Name",
    "TaskState",
    "ValidationResult",
]
