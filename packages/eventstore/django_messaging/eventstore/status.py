"""Event-store figures for ``manage.py messaging_status`` and the Prometheus gauges: where each
follower is in the log of each leader it follows (its tracking position) against the head of
that log (the leader's last notification id), and the difference, the follower's lag.

The positions come from the tracking table of the event store's database; a follower of the
project's runner (see :mod:`.runners`) that has processed nothing yet has position 0.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.status import Figure, Kind
from django_messaging.eventstore.conf import settings
from django_messaging.eventstore.models import NotificationSequence, NotificationTrackingRecord


def _runner_pairs() -> set[tuple[str, str]]:
    """(follower, leader) of the project's eventsourcing system, when it has one."""
    from django_messaging.eventstore.runners import get_runner

    try:
        system = get_runner().system
    except ConfigurationError:
        return set()
    return {
        (follower, leader) for follower, leaders in system.follows.items() for leader in leaders
    }


def follower_figures(timeout: float) -> list[Figure]:
    using = settings.DJANGO_DB_ALIAS or DEFAULT_DB_ALIAS
    positions = {
        (row["application_name"], row["upstream_application_name"]): row["notification_id"]
        for row in NotificationTrackingRecord.objects.using(using).values(
            "application_name", "upstream_application_name", "notification_id"
        )
    }
    for pair in _runner_pairs():
        positions.setdefault(pair, 0)
    heads = dict(
        NotificationSequence.objects.using(using).values_list("application_name", "last_id")
    )
    figures = []
    for (follower, leader), position in sorted(positions.items()):
        head = heads.get(leader, 0)
        labels = (("follower", follower), ("leader", leader))
        figures += [
            Figure(
                "eventstore",
                "eventstore_follower_lag",
                Kind.LAG,
                max(0, head - position),
                labels,
                help="events of a leader its follower has not processed",
            ),
            Figure(
                "eventstore",
                "eventstore_follower_position",
                None,
                position,
                labels,
                help="last notification id of the leader the follower processed",
            ),
            Figure(
                "eventstore",
                "eventstore_leader_head",
                None,
                head,
                labels,
                help="last notification id of the leader",
            ),
        ]
    return figures
