"""Writes as a django-cqrs master with a CQRS_SERIALIZER: create three rows, update one inside a
transaction, delete one; print the result."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refproj.settings")

import django

django.setup()

from django.db import transaction  # noqa: E402
from refapp.models import RefArticle  # noqa: E402

rows = [RefArticle.objects.create(title=f"ref{i}") for i in range(3)]
with transaction.atomic():
    rows[0].title = "ref0 updated"
    rows[0].save()
rows[2].delete()
print(json.dumps({str(r.pk): r.title for r in rows[:2]}))
