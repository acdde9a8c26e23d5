from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from django_messaging.cqrs.management.utils import (
    batch_values,
    parse_filter,
    replica_model,
    to_json,
)
from django_messaging.cqrs.serialization import to_wire


class Command(BaseCommand):
    help = (
        "First stage of the deleted-rows pipeline: print the replica's pks, one JSON list per "
        "batch, after a '<cqrs_id>,<time>' line.\n\n"
        "Example: python manage.py cqrs_deleted_diff_replica --cqrs-id=author | "
        "python manage.py cqrs_deleted_diff_master | python manage.py cqrs_deleted_sync_replica"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cqrs-id", "-cid", required=True, help="replica CQRS_ID")
        parser.add_argument("--filter", "-f", help="JSON object of queryset lookups")
        parser.add_argument("--batch", "-b", type=int, default=10000, help="pks per line")

    def handle(self, *args: Any, **options: Any) -> None:
        model = replica_model(options["cqrs_id"])
        queryset = model._default_manager.filter(**parse_filter(options["filter"]))
        self.stdout.write(f"{options['cqrs_id']},{timezone.now().isoformat()}")
        for rows in batch_values(queryset, ("pk",), options["batch"]):
            self.stdout.write(to_json([to_wire(pk) for (pk,) in rows]))
