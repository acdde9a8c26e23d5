"""``./manage.py publish``: the outbox relay."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import WorkerFactory
from django_messaging.outbox.relay import Relay


class Command(WorkerCommand):
    help = (
        "Send the rows of the outbox table (Published) to the broker and mark them sent once "
        "the broker confirmed them. Runs until SIGTERM/SIGINT, which finish the current batch. "
        "Several relays (processes, hosts) may run at once: each row goes to exactly one. "
        "Example: ./manage.py publish --batch-size 500 --workers 2"
    )
    metrics_packages = ("outbox",)
    worker_aliases = ("--processes",)

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="rows claimed per batch (default: PUBLISHED_CHUNK_SIZE)",
        )

    def check_options(self, **options: Any) -> None:
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise UsageError("--batch-size must be at least 1")

    def worker_factory(self, **options: Any) -> WorkerFactory:
        batch_size = options["batch_size"]
        return lambda: Relay(batch_size=batch_size)
