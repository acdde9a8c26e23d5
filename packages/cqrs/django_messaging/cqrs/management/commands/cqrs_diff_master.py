from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from django_messaging.cqrs.management.utils import (
    batch_qs,
    batch_values,
    master_model,
    parse_filter,
    to_json,
)
from django_messaging.cqrs.mixins import RawMasterMixin
from django_messaging.cqrs.serialization import to_wire


class Command(BaseCommand):
    help = (
        "First stage of the diff pipeline: print [pk, revision] pairs of a master model.\n\n"
        "Line 1 is '<cqrs_id>,<time>', then one JSON list of pairs per batch.\n\n"
        "Example: python manage.py cqrs_diff_master --cqrs-id=author | "
        "python manage.py cqrs_diff_replica | python manage.py cqrs_diff_sync"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cqrs-id", "-cid", required=True, help="master CQRS_ID")
        parser.add_argument("--filter", "-f", help="JSON object of queryset lookups")
        parser.add_argument("--batch", "-b", type=int, default=10000, help="rows per line")

    def handle(self, *args: Any, **options: Any) -> None:
        model = master_model(options["cqrs_id"])
        queryset = model._default_manager.filter(**parse_filter(options["filter"]))
        self.stdout.write(f"{options['cqrs_id']},{timezone.now().isoformat()}")
        if model.is_sync_instance is RawMasterMixin.is_sync_instance:
            for rows in batch_values(queryset, ("pk", "cqrs_revision"), options["batch"]):
                self.stdout.write(to_json([[to_wire(pk), rev] for pk, rev in rows]))
            return
        for objs in batch_qs(queryset, options["batch"]):
            pairs = [[to_wire(o.pk), o.cqrs_revision] for o in objs if o.is_sync_instance()]
            self.stdout.write(to_json(pairs))
