"""Writes as a django-cqrs master: create three rows, update one, delete one; print the result."""

import datetime as dt
import json
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refproj.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from refapp.models import RefProduct  # noqa: E402

call_command("migrate", "--run-syncdb", verbosity=0)
rows = [
    RefProduct.objects.create(name=f"ref{i}", price=Decimal(f"{i}.25"), day=dt.date(2026, 1, i + 1))
    for i in range(3)
]
rows[0].name = "ref0 updated"
rows[0].save()
rows[2].delete()
print(json.dumps({str(r.pk): r.name for r in rows[:2]}))
