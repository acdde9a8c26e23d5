"""``./manage.py kafka_resolve_relations [consumer ...]``"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.core.management.base import CommandParser

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import WorkerFactory
from django_messaging.kafka import kafka
from django_messaging.kafka.relations import RelationResolver


class Command(WorkerCommand):
    help = (
        "Replay the Kafka messages the relations resolver parked (a topic's get_relations() "
        "named a row that did not exist yet), once those rows exist: each key's messages in "
        "offset order, through their consumer's handler and its retry and dead-letter policy. "
        "Runs until SIGTERM or Ctrl-C; --once replays what it can and exits.\n\n"
        "Examples:\n"
        "  ./manage.py kafka_resolve_relations\n"
        "  ./manage.py kafka_resolve_relations my_app.consumers.MyAppConsumer --interval 5\n"
        "  ./manage.py kafka_resolve_relations --once"
    )
    metrics_packages = ("kafka",)

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "consumers",
            nargs="*",
            metavar="consumer",
            help="registry keys (module.ClassName) whose messages to replay; default: all",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="seconds between two looks at the waiting messages (default 1)",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=500,
            help="most messages replayed per consumer and look (default 500)",
        )
        parser.add_argument(
            "--once", action="store_true", help="replay what can be replayed now, then exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            self.check_options(**options)
            resolver = self._resolver(**options)
            resolver.start()
            try:
                resolver.run_once()
            finally:
                resolver.stop()
            self.stdout.write(f"replayed {resolver.messages_handled()} message(s)")
            return
        super().handle(*args, **options)

    def check_options(self, **options: Any) -> None:
        unknown = [key for key in options["consumers"] if key not in kafka.consumers]
        if unknown:
            known = ", ".join(kafka.consumers) or "none"
            raise UsageError(f"not registered: {', '.join(unknown)} (registered: {known})")

    def _resolver(self, **options: Any) -> RelationResolver:
        return build_resolver(options["consumers"], options["interval"], options["limit"])

    def worker_factory(self, **options: Any) -> WorkerFactory:
        return partial(build_resolver, options["consumers"], options["interval"], options["limit"])


def build_resolver(keys: list[str] | None, interval: float, limit: int) -> RelationResolver:
    """The resolver of the consumers registered as ``keys`` (default: every one but the
    retry consumers); importable by name, so a spawned worker process can build it."""
    keys = keys or [k for k in kafka.consumers if not k.endswith(".retry")]
    return RelationResolver([kafka.consumers[k] for k in keys], interval, limit)
