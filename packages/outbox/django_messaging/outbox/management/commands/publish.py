"""``./manage.py publish``: the outbox relay."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_messaging.core.worker import run_worker, run_workers
from django_messaging.outbox.relay import Relay


class Command(BaseCommand):
    help = (
        "Send the rows of the outbox table (Published) to the broker and mark them sent once "
        "the broker confirmed them. Runs until SIGTERM/SIGINT, which finish the current batch. "
        "Several relays (processes, hosts) may run at once: each row goes to exactly one. "
        "Example: ./manage.py publish --batch-size 500 --processes 2"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="rows claimed per batch (default: DEFAULT_PUBLISHED_CHUNK_SIZE)",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="relay processes to run under one supervisor (default 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if options["processes"] <= 1:
            run_worker(Relay(batch_size=batch_size))
            return
        code = run_workers(
            [lambda: Relay(batch_size=batch_size) for _ in range(options["processes"])]
        )
        if code:
            raise SystemExit(code)
