"""``./manage.py publish``: the outbox relay."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import WorkerFactory
from django_messaging.outbox.conf import settings as outbox_settings
from django_messaging.outbox.relay import Relay
from django_messaging.outbox.transports import named


class Command(WorkerCommand):
    help = (
        "Send the rows of the outbox table (Published) to their brokers and mark them sent once "
        "the broker confirmed them. Every transport of MESSAGING['OUTBOX']['TRANSPORTS'] gets "
        "its own relay: with one transport (the default) it runs in this process; with several, "
        "each runs as a supervised worker process (--workers of them per transport). "
        "--transport limits the command to the transports named. The rows are read from the "
        "databases of MESSAGING['OUTBOX']['DATABASES'], by default the one the router gives for "
        "writing Published ('default'); --database, repeated, names others. With several "
        "databases each gets its relays. Runs until SIGTERM/SIGINT, "
        "which finish the current batch. Several relays (processes, hosts) may run at once: "
        "each row goes to exactly one, and rows with the same key go in order. "
        "Example: ./manage.py publish --transport events --batch-size 500 --workers 2"
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
        parser.add_argument(
            "--transport",
            "-t",
            action="append",
            dest="transports",
            metavar="NAME",
            help="relay only the rows of this transport (repeat for several; default: every "
            "transport in MESSAGING['OUTBOX']['TRANSPORTS'], 'default' included)",
        )
        parser.add_argument(
            "--database",
            action="append",
            dest="databases",
            metavar="ALIAS",
            help="relay the outbox rows of this database of DATABASES (repeat for several; "
            "default: MESSAGING['OUTBOX']['DATABASES'], or the router's database for Published)",
        )

    def check_options(self, **options: Any) -> None:
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise UsageError("--batch-size must be at least 1")
        for alias in options["databases"] or ():
            if alias not in settings.DATABASES:
                raise UsageError(
                    f"--database {alias!r} is not in DATABASES (known: "
                    f"{', '.join(settings.DATABASES)})"
                )
        known = named.configured()
        for name in options["transports"] or ():
            if name not in known:
                raise UsageError(named.unknown(name))

    def worker_factories(self, workers: int, **options: Any) -> list[WorkerFactory]:
        batch_size = options["batch_size"]
        names = list(dict.fromkeys(options["transports"] or named.configured()))
        databases: list[str | None] = list(
            dict.fromkeys(options["databases"] or outbox_settings.DATABASES or [None])
        )

        return [
            partial(Relay, batch_size=batch_size, transport_name=name, using=using)
            for using in databases
            for name in names
            for _ in range(workers)
        ]
