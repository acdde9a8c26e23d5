"""``./manage.py outbox_purge``: retention for the outbox and received tables."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_messaging.outbox.conf import settings as outbox_settings
from django_messaging.outbox.retention import purge


class Command(BaseCommand):
    help = (
        "Delete sent outbox rows and received rows older than --days (default DAYS_TO_KEEP_DATA), "
        "in batches of --batch-size (default PURGE_BATCH_SIZE). Rows not yet sent are "
        "never deleted. Purges each database of MESSAGING['OUTBOX']['DATABASES'] (default: the "
        "one the router gives for writing each table), or the one --database names. "
        "Example: ./manage.py outbox_purge --days 14 --dry-run"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, default=None)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument(
            "--database",
            metavar="ALIAS",
            help="the database to purge (default: each of MESSAGING['OUTBOX']['DATABASES'], or "
            "the router's database for each table)",
        )
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--published-only", action="store_true")
        only.add_argument("--received-only", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        if using is not None and using not in settings.DATABASES:
            raise CommandError(
                f"--database {using!r} is not in DATABASES (known: {', '.join(settings.DATABASES)})"
            )
        databases: list[str | None] = [using] if using else [*outbox_settings.DATABASES] or [None]
        verb = "would delete" if options["dry_run"] else "deleted"
        for alias in databases:
            result = purge(
                options["days"],
                batch_size=options["batch_size"],
                published=not options["received_only"],
                received=not options["published_only"],
                dry_run=options["dry_run"],
                using=alias,
            )
            where = f" in database {alias!r}" if len(databases) > 1 else ""
            self.stdout.write(
                f"{verb} {result.published} published and {result.received} received rows{where}"
            )
