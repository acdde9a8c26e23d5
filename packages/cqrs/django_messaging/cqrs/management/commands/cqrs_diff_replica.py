from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.conf import settings
from django_messaging.cqrs.management.utils import replica_model, to_json
from django_messaging.cqrs.serialization import to_wire


class Command(BaseCommand):
    help = (
        "Second stage of the diff pipeline (stdin → stdout): keep the pks whose revision on "
        "this replica differs from the master's or which are missing here.\n\n"
        "Example: python manage.py cqrs_diff_master --cqrs-id=author | "
        "python manage.py cqrs_diff_replica | python manage.py cqrs_diff_sync"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        first = sys.stdin.readline().strip()
        if not first:
            raise CommandError("Expected the output of cqrs_diff_master on stdin.")
        model = replica_model(first.split(",", 1)[0])
        self.stdout.write(f"{first},{settings.QUEUE}")
        loads = get_serializer("json").loads
        pk_field = model._meta.pk
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            pairs = loads(line.encode())
            wanted = {pk_field.to_python(pk): rev for pk, rev in pairs}
            have = dict(
                model._default_manager.filter(pk__in=list(wanted)).values_list(
                    "pk", "cqrs_revision"
                )
            )
            diff = [to_wire(pk) for pk, rev in wanted.items() if have.get(pk) != rev]
            if diff:
                self.stderr.write(f"PK to resync: {to_json(diff)}")
            self.stdout.write(to_json(diff))
