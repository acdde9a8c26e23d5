from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from django.core.management.base import CommandParser
from django.db import DEFAULT_DB_ALIAS

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import WorkerFactory
from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.relay import PendingRelay


class Command(WorkerCommand):
    help = (
        "Master messages that could not be published on commit are stored; this sends them.\n\n"
        "  list   show the stored messages\n"
        "  flush  publish them now, oldest first, retries not yet due too (stops at the first\n"
        "         failure)\n"
        "  run    the relay: lease stored messages, publish them, delete each once the broker\n"
        "         confirmed it, until SIGTERM (several can run side by side: --workers)\n\n"
        "Example: python manage.py cqrs_pending run --interval 0.5 --workers 2"
    )
    metrics_packages = ("cqrs",)

    def create_parser(self, *args: Any, **kwargs: Any) -> Any:
        parser = super().create_parser(*args, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the lines above
        return parser

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("command", choices=["list", "flush", "run"])
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--interval", type=float, default=1.0, help="run: seconds to wait when nothing is due"
        )

    def check_options(self, **options: Any) -> None:
        if options["interval"] <= 0:
            raise UsageError("--interval must be more than 0")

    def worker_factory(self, **options: Any) -> WorkerFactory:
        database, interval = options["database"], options["interval"]
        return partial(PendingRelay, database, interval=interval)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["command"] == "run":
            super().handle(*args, **options)
        else:
            self.once(options["command"], options["database"])

    def once(self, command: str, database: str) -> None:
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
