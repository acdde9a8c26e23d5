from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import router, transaction

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.management.utils import replica_model


class Command(BaseCommand):
    help = (
        "Last stage of the deleted-rows pipeline: delete the replica rows whose pks arrive on "
        "stdin.\n\n"
        "Example: python manage.py cqrs_deleted_diff_replica --cqrs-id=author | "
        "python manage.py cqrs_deleted_diff_master | python manage.py cqrs_deleted_sync_replica"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        first = sys.stdin.readline().strip()
        if not first:
            raise CommandError("Expected the output of cqrs_deleted_diff_master on stdin.")
        model = replica_model(first.split(",", 1)[0])
        loads = get_serializer("json").loads
        deleted = 0
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            pks = loads(line.encode())
            if pks:
                with transaction.atomic(using=router.db_for_write(model)):
                    deleted += model._default_manager.filter(pk__in=pks).delete()[0]
        self.stderr.write(f"Done! {deleted} row(s) deleted.")
