from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.management.utils import master_model, to_json
from django_messaging.cqrs.serialization import to_wire


class Command(BaseCommand):
    help = (
        "Second stage of the deleted-rows pipeline (stdin → stdout): keep the replica pks that "
        "no longer exist on the master.\n\n"
        "Example: python manage.py cqrs_deleted_diff_replica --cqrs-id=author | "
        "python manage.py cqrs_deleted_diff_master | python manage.py cqrs_deleted_sync_replica"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        first = sys.stdin.readline().strip()
        if not first:
            raise CommandError("Expected the output of cqrs_deleted_diff_replica on stdin.")
        model = master_model(first.split(",", 1)[0])
        self.stdout.write(first)
        loads = get_serializer("json").loads
        pk_field = model._meta.pk
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            pks = [pk_field.to_python(pk) for pk in loads(line.encode())]
            present = set(model._default_manager.filter(pk__in=pks).values_list("pk", flat=True))
            gone = [to_wire(pk) for pk in pks if pk not in present]
            if gone:
                self.stderr.write(f"PK to delete: {to_json(gone)}")
            self.stdout.write(to_json(gone))
