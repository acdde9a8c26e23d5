"""``./manage.py outbox_purge``: retention for the outbox and received tables."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_messaging.outbox.retention import purge


class Command(BaseCommand):
    help = (
        "Delete sent outbox rows and received rows older than --days (default DAYS_TO_KEEP_DATA), "
        "in batches of --batch-size (default PURGE_BATCH_SIZE). Rows not yet sent are "
        "never deleted. Example: ./manage.py outbox_purge --days 14 --dry-run"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, default=None)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--published-only", action="store_true")
        only.add_argument("--received-only", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        result = purge(
            options["days"],
            batch_size=options["batch_size"],
            published=not options["received_only"],
            received=not options["published_only"],
            dry_run=options["dry_run"],
        )
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"{verb} {result.published} published and {result.received} received rows"
        )
