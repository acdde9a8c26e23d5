"""``./manage.py kafka_consume [consumer ...]``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import WorkerFactory
from django_messaging.kafka import kafka


class Command(WorkerCommand):
    help = (
        "Run the registered Kafka consumers (all of them, including the generated '.retry' "
        "consumers, when none is named), each in its own process; --workers N runs N processes "
        "of every consumer, which share its group's partitions. SIGTERM or Ctrl-C finishes the "
        "current batch, commits and leaves the group; a consumer that crashes is restarted, and "
        "one that keeps crashing stops the command with exit code 1. A consumer name that is "
        "not registered exits 2.\n\n"
        "Examples:\n"
        "  ./manage.py kafka_consume\n"
        "  ./manage.py kafka_consume my_app.consumers.MyAppConsumer "
        "my_app.consumers.MyAppConsumer.retry\n"
        "  ./manage.py kafka_consume my_app.consumers.MyAppConsumer --workers 3\n"
        "  ./manage.py kafka_consume --list"
    )
    metrics_packages = ("kafka",)

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "consumers",
            nargs="*",
            metavar="consumer",
            help="registry keys (module.ClassName, or module.ClassName.retry); default: all",
        )
        parser.add_argument("--list", action="store_true", help="print the registry keys and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for key in kafka.consumers:
                self.stdout.write(key)
            return
        super().handle(*args, **options)

    def check_options(self, **options: Any) -> None:
        unknown = [key for key in options["consumers"] if key not in kafka.consumers]
        if unknown:
            known = ", ".join(kafka.consumers) or "none"
            raise UsageError(f"not registered: {', '.join(unknown)} (registered: {known})")

    def worker_factories(self, workers: int, **options: Any) -> list[WorkerFactory]:
        return kafka.consumer_factories(options["consumers"] or None, workers)
