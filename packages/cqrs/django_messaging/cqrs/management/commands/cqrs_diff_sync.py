from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.constants import NO_QUEUE
from django_messaging.cqrs.management.commands.cqrs_sync import sync_queryset
from django_messaging.cqrs.management.utils import Progress, master_model


class Command(BaseCommand):
    help = (
        "Last stage of the diff pipeline: send SYNC messages for the pks on stdin to the "
        "replica queue named on line 1 (or to all replicas for 'None').\n\n"
        "Example: python manage.py cqrs_diff_master --cqrs-id=author | "
        "python manage.py cqrs_diff_replica | python manage.py cqrs_diff_sync"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", "-b", type=int, default=10000, help="rows per query")
        parser.add_argument("--progress", "-p", action="store_true", help="progress on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        first = sys.stdin.readline().strip()
        if not first:
            raise CommandError("Expected the output of cqrs_diff_replica on stdin.")
        parts = first.split(",")
        model = master_model(parts[0])
        queue = None if parts[-1] in (NO_QUEUE, "") or len(parts) < 3 else parts[-1]
        loads = get_serializer("json").loads
        progress = Progress(None, self.stderr, options["progress"])
        sent = 0
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            pks = loads(line.encode())
            if pks:
                queryset = model._default_manager.filter(pk__in=pks)
                sent += sync_queryset(model, queryset, queue, options["batch"], progress)
        self.stderr.write(f"Done! {sent} instance(s) synced.")
