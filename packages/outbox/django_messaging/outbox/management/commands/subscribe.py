"""``./manage.py subscribe CALLBACK DESTINATION [QUEUE_NAME]``: the idempotent subscriber."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.management.base import CommandParser
from django.utils.module_loading import import_string

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.worker import WorkerFactory
from django_messaging.outbox.consumers import Consumer


class Command(WorkerCommand):
    help = (
        "Consume DESTINATION and call CALLBACK (dotted path of a function taking a Payload) for "
        "each message. The callback calls payload.save() inside its transaction (acknowledged "
        "after commit) or payload.nack() (dead-lettered). Runs until SIGTERM/SIGINT. "
        "Example: ./manage.py subscribe 'shop.callbacks.order_created' '/topic/orders.v1' "
        "billing-orders"
    )

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("callback", help="dotted path, e.g. 'shop.callbacks.order_created'")
        parser.add_argument(
            "destination",
            help="STOMP destination, e.g. '/topic/orders.v1' or '/exchange/amq.topic/orders.*'",
        )
        parser.add_argument(
            "queue_name",
            nargs="?",
            default=None,
            help="queue to consume (default: the last part of the destination). Dead letters "
            "go to DLQ.<queue_name>.",
        )

    def check_options(self, **options: Any) -> None:
        self._callback(options["callback"])

    def worker_factory(self, **options: Any) -> WorkerFactory:
        callback = self._callback(options["callback"])
        destination, queue_name = options["destination"], options["queue_name"]
        return partial(Consumer, callback, destination, queue_name)

    @staticmethod
    def _callback(path: str) -> Callable[..., Any]:
        try:
            callback = import_string(path)
        except ImportError as exc:
            raise UsageError(f"Could not import {path!r}: {exc}") from exc
        if not callable(callback):
            raise UsageError(f"{path!r} is not callable")
        return callback
