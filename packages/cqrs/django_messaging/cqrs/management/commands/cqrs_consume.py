from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_messaging.core.reload import is_reloaded_child, run_reloading
from django_messaging.core.worker import Worker, run_workers
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


class Command(BaseCommand):
    help = (
        "Consume this service's CQRS queue and apply the messages to the replica models.\n\n"
        "Runs until SIGTERM/SIGINT, then finishes the batch in progress, acknowledges it and "
        "exits 0. With -w N, N supervised worker processes share the queue; a crashed worker "
        "is restarted. With --reload (for development) the command starts again, gracefully, "
        "whenever a Python file of the project changes.\n\n"
        "Example: python manage.py cqrs_consume -w 2 --cqrs-id author book"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--workers", "-w", type=int, default=1, help="worker processes (default 1)"
        )
        parser.add_argument(
            "--cqrs-id",
            "-cid",
            nargs="*",
            dest="cqrs_ids",
            help="bind the queue only for these CQRS_IDs (default: every replica model)",
        )
        parser.add_argument(
            "--reload",
            "-r",
            action="store_true",
            help="restart when a Python file changes (development; like runserver's reloader)",
        )

    def handle(self, *args: Any, workers: int, cqrs_ids: list[str] | None, **options: Any) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        for cqrs_id in cqrs_ids or []:
            if cqrs_id not in ReplicaRegistry.models:
                raise CommandError(f"Wrong CQRS ID: {cqrs_id!r} is not a replica model here.")
        if options["reload"] and not is_reloaded_child():
            code = run_reloading()
            if code:
                sys.exit(code)
            return
        transport = current_transport()
        factory = getattr(transport, "consumer_worker", None)
        if factory is not None:
            factories = [lambda: factory(cqrs_ids)] * workers
        else:
            factories = [lambda: _ConsumeWorker(transport, cqrs_ids)] * workers
        code = run_workers(factories)
        if code:
            sys.exit(code)
