"""``./manage.py kafka_consume [consumer ...]``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_messaging.kafka import kafka


class Command(BaseCommand):
    help = (
        "Run the registered Kafka consumers (all of them, including the generated '.retry' "
        "consumers, when none is named), each in its own process. SIGTERM or Ctrl-C finishes the "
        "current batch, commits and leaves the group; a consumer that crashes is restarted, and "
        "one that keeps crashing stops the command with exit code 1.\n\n"
        "Examples:\n"
        "  ./manage.py kafka_consume\n"
        "  ./manage.py kafka_consume my_app.consumers.MyAppConsumer "
        "my_app.consumers.MyAppConsumer.retry\n"
        "  ./manage.py kafka_consume --list"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "consumers",
            nargs="*",
            metavar="consumer",
            help="registry keys (module.ClassName, or module.ClassName.retry); default: all",
        )
        parser.add_argument("--list", action="store_true", help="print the registry keys and exit")

    def handle(self, *args: Any, consumers: list[str], list: bool = False, **options: Any) -> None:
        if list:
            for key in kafka.consumers:
                self.stdout.write(key)
            return
        unknown = [key for key in consumers if key not in kafka.consumers]
        if unknown:
            known = ", ".join(kafka.consumers) or "none"
            raise CommandError(f"not registered: {', '.join(unknown)} (registered: {known})")
        code = kafka.run_consumers(consumers or None)
        if code:
            raise CommandError(f"a consumer kept crashing (exit code {code}); see the log above")
