"""``./manage.py subscribe CALLBACK DESTINATION [QUEUE_NAME]``: the idempotent subscriber."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from django_messaging.core.worker import run_worker
from django_messaging.outbox.consumers import Consumer


class Command(BaseCommand):
    help = (
        "Consume DESTINATION and call CALLBACK (dotted path of a function taking a Payload) for "
        "each message. The callback calls payload.save() inside its transaction (acknowledged "
        "after commit) or payload.nack() (dead-lettered). Runs until SIGTERM/SIGINT. "
        "Example: ./manage.py subscribe 'shop.callbacks.order_created' '/topic/orders.v1' "
        "billing-orders"
    )

    def add_arguments(self, parser: CommandParser) -> None:
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

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            callback = import_string(options["callback"])
        except ImportError as exc:
            raise CommandError(f"Could not import {options['callback']!r}: {exc}") from exc
        if not callable(callback):
            raise CommandError(f"{options['callback']!r} is not callable")
        run_worker(Consumer(callback, options["destination"], options["queue_name"]))
