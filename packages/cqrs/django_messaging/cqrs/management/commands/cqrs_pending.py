from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS

from django_messaging.core.worker import Worker, run_worker
from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.models import PendingMessage


class _Relay(Worker):
    name = "cqrs_pending relay"

    def __init__(self, using: str, interval: float) -> None:
        self.using = using
        self.interval = interval
        import threading

        self.wake = threading.Event()

    def run_once(self) -> None:
        producer.flush_pending(self.using)
        self.wake.wait(self.interval)


class Command(BaseCommand):
    help = (
        "Master messages that could not be published on commit are stored; this sends them.\n\n"
        "  list   show the stored messages\n"
        "  flush  publish them now, oldest first (stops at the first failure)\n"
        "  run    keep flushing every --interval seconds until SIGTERM\n\n"
        "Example: python manage.py cqrs_pending flush"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("command", choices=["list", "flush", "run"])
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between flushes")

    def handle(self, *args: Any, command: str, database: str, **options: Any) -> None:
        if command == "list":
            for row in PendingMessage.objects.using(database).order_by("id"):
                self.stdout.write(
                    f"{row.pk} {row.created.isoformat()} {row} attempts={row.attempts} "
                    f"error={row.last_error}"
                )
            return
        if command == "flush":
            sent = producer.flush_pending(database)
            left = producer.pending_count(database)
            self.stderr.write(f"Published {sent} stored message(s); {left} left.")
            return
        run_worker(_Relay(database, options["interval"]))
