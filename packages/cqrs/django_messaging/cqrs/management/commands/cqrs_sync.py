from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.management.utils import (
    Progress,
    batch_qs,
    master_model,
    parse_filter,
)
from django_messaging.cqrs.signals import MasterSignals


def sync_queryset(
    model: Any, queryset: Any, queue: str | None, batch: int, progress: Progress
) -> int:
    sent = 0
    for rows in batch_qs(model.relate_cqrs_serialization(queryset), batch):
        for instance in rows:
            MasterSignals.post_save(model, instance=instance, queue=queue, sync=True)
            sent += 1
        progress.add(len(rows))
    return sent


class Command(BaseCommand):
    help = (
        "Publish master rows again as SYNC messages, to every replica or to one queue.\n\n"
        "Without --filter every row is sent. Rows are read in pk order, paginated by key.\n\n"
        "Examples:\n"
        "  python manage.py cqrs_sync --cqrs-id=author -f '{\"id__in\": [1, 2]}'\n"
        "  python manage.py cqrs_sync --cqrs-id=author -q replica   # all rows, one replica"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cqrs-id", "-cid", required=True, help="master CQRS_ID")
        parser.add_argument("--filter", "-f", help="JSON object of queryset lookups")
        parser.add_argument("--queue", "-q", help="send only to this replica queue")
        parser.add_argument("--batch", "-b", type=int, default=10000, help="rows per query")
        parser.add_argument("--progress", "-p", action="store_true", help="progress on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        model = master_model(options["cqrs_id"])
        lookups = parse_filter(options["filter"])
        try:
            queryset = model._default_manager.filter(**lookups)
            total = queryset.count()
        except Exception as exc:
            raise CommandError(f"Bad --filter {lookups!r}: {exc}") from exc
        if not total:
            self.stderr.write("No objects found for filter!")
            return
        progress = Progress(total, self.stderr, options["progress"])
        sent = sync_queryset(model, queryset, options["queue"], options["batch"], progress)
        pending = producer.pending_count()
        self.stderr.write(f"Done! {sent} instance(s) synced.")
        if pending:
            self.stderr.write(f"{pending} message(s) are stored to be sent later (cqrs_pending).")
