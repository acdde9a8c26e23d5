"""``sync.py PK [QUEUE]``: a django-cqrs master re-sends one row as a SYNC (to QUEUE only, or to
every replica)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refproj.settings")

import django

django.setup()

from refapp.models import RefProduct  # noqa: E402

row = RefProduct.objects.get(pk=int(sys.argv[1]))
if not row.cqrs_sync(queue=sys.argv[2] if len(sys.argv) > 2 else None):
    sys.exit("cqrs_sync() returned False")
