"""A materialised view on the Django ORM: counter rows and the tracking position commit together."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from eventsourcing.persistence import Tracking
from eventsourcing.tests.projection import EventCountersView

from django_messaging.eventstore.recorders import DjangoTrackingRecorder
from tests.project.eventstore_app.models import EventCounter


class DjangoEventCountersView(DjangoTrackingRecorder, EventCountersView):
    def _count(self, name: str) -> int:
        row = EventCounter.objects.using(self.using).filter(name=name).first()
        return row.count if row else 0

    def _incr(self, name: str, tracking: Tracking) -> None:
        with transaction.atomic(using=self.using):
            self.insert_tracking(tracking)
            counters = EventCounter.objects.using(self.using)
            if not counters.filter(name=name).update(count=F("count") + 1):
                counters.create(name=name, count=1)

    def get_created_event_counter(self) -> int:
        return self._count("created")

    def get_subsequent_event_counter(self) -> int:
        return self._count("subsequent")

    def incr_created_event_counter(self, tracking: Tracking) -> None:
        self._incr("created", tracking)

    def incr_subsequent_event_counter(self, tracking: Tracking) -> None:
        self._incr("subsequent", tracking)
