from __future__ import annotations

import time
from functools import partial
from typing import Any

from django.core.management.base import CommandParser

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import Worker, WorkerFactory
from django_messaging.cqrs.registries import ReplicaRegistry
from django_messaging.cqrs.transport import current_transport


class _ConsumeWorker(Worker):
    """Runs a custom transport's blocking ``consume()`` (no graceful stop inside it)."""

    #: Seconds between two calls of a ``consume()`` that returned at once, rather than a spin.
    idle_pause = 1.0

    def __init__(self, transport: Any, cqrs_ids: list[str] | None) -> None:
        self.transport = transport
        self.cqrs_ids = cqrs_ids

    def run_once(self) -> None:
        started = time.monotonic()
        self.transport.consume(cqrs_ids=self.cqrs_ids)
        left = self.idle_pause - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)


class Command(WorkerCommand):
    help = (
        "Consume this service's CQRS queue and apply the messages to the replica models.\n\n"
        "Runs until SIGTERM/SIGINT, then finishes the batch in progress, acknowledges it and "
        "exits 0. With -w N, N supervised worker processes share the queue (on Kafka: N "
        "members of the consumer group QUEUE share the partitions); a crashed worker "
        "is restarted, and one that keeps crashing stops the command with exit code 1. With "
        "--reload (for development) the command starts again, gracefully, whenever a Python "
        "file of the project changes. A CQRS_ID that is not a replica model here exits 2.\n\n"
        "Example: python manage.py cqrs_consume -w 2 --cqrs-id author book"
    )
    metrics_packages = ("cqrs",)

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--cqrs-id",
            "-cid",
            nargs="*",
            dest="cqrs_ids",
            help="bind the queue only for these CQRS_IDs (default: every replica model)",
        )

    def check_options(self, **options: Any) -> None:
        for cqrs_id in options["cqrs_ids"] or []:
            if cqrs_id not in ReplicaRegistry.models:
                raise UsageError(f"Wrong CQRS ID: {cqrs_id!r} is not a replica model here.")

    def worker_factory(self, **options: Any) -> WorkerFactory:
        cqrs_ids: list[str] | None = options["cqrs_ids"]
        transport = current_transport()
        factory = getattr(transport, "consumer_worker", None)
        if factory is not None:
            return partial(factory, cqrs_ids)
        return partial(_ConsumeWorker, transport, cqrs_ids)
