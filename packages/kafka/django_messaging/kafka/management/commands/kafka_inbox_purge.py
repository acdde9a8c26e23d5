"""``./manage.py kafka_inbox_purge``: delete the recorded ids of old processed messages."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_messaging.kafka.conf import settings
from django_messaging.kafka.models import ProcessedMessage

HELP = """\
Delete the ids idempotent Kafka consumers recorded for messages processed more than DAYS days
ago (default: MESSAGING["KAFKA"]["INBOX_RETENTION_DAYS"]).

A message redelivered after its id was deleted is handled again: keep the ids longer than a
message can be redelivered (the topic's retention, or how far a group's offsets may be reset).

examples:
  ./manage.py kafka_inbox_purge
  ./manage.py kafka_inbox_purge --older-than 30 --group orders-service
"""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs["formatter_class"] = argparse.RawDescriptionHelpFormatter
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="DAYS",
            help="delete ids recorded more than DAYS days ago (default: INBOX_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--group", help="only the ids of this consumer group (group.id); default: every group"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than"]
        if days is None:
            days = settings.INBOX_RETENTION_DAYS
        if days < 0:
            raise CommandError("--older-than must not be negative")
        rows = ProcessedMessage.objects.filter(
            processed_at__lt=timezone.now() - timedelta(days=days)
        )
        if options["group"]:
            rows = rows.filter(consumer=options["group"])
        deleted, _ = rows.delete()
        self.stdout.write(f"deleted {deleted} processed message ids older than {days:g} days")
