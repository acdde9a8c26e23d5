"""Catching a follower of an eventsourcing system up with its leaders, in one transaction.

``sync_followers`` runs :func:`sync_follower` for each follower it is asked for;
:func:`django_messaging.eventstore.testing.follow` runs it in tests.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from django.db import transaction
from eventsourcing.system import Follower, Leader, Runner

from django_messaging.core import metrics

__all__ = ["application", "forget_cached_aggregates", "pull_and_process", "sync_follower"]


class _DryRun(Exception):
    """Raised at the end of a dry-run follower so that its transaction rolls back."""


class DryRunRefused(Exception):
    """A dry run of a follower whose events are not stored through Django."""


def application(runner: Runner[Any], name: str) -> Any:
    """The application called ``name`` of ``runner`` (started or not)."""
    applications = getattr(runner, "apps", None)
    if isinstance(applications, dict) and name in applications:
        return applications[name]
    return runner.get(runner.system.get_app_cls(name))


def sync_follower(runner: Runner[Any], name: str, dry_run: bool = False) -> dict[str, int]:
    """Process what the follower ``name`` has not processed of each of its leaders, in one
    transaction of its database (rolled back when ``dry_run``); the count per leader."""
    follower = application(runner, name)
    assert isinstance(follower, Follower), f"{name} is not a Follower"
    using = getattr(follower.recorder, "using", None)
    if dry_run and using is None:
        raise DryRunRefused(
            f"{name} does not store its events with django_messaging.eventstore, so a dry "
            "run could not roll its changes back"
        )
    counts: dict[str, int] = {}
    block = transaction.atomic(using=using) if using is not None else nullcontext()
    try:
        with block:
            for leader_name in runner.system.follows[name]:
                counts[leader_name] = pull_and_process(runner, follower, leader_name)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return counts


def forget_cached_aggregates(app: Any) -> None:
    """Drop cached aggregates: they may hold changes of a transaction that was rolled back."""
    cache = getattr(getattr(app, "repository", None), "cache", None)
    if cache is not None:
        for aggregate_id in list(cache.cache):
            cache.get(aggregate_id, evict=True)


def pull_and_process(runner: Runner[Any], follower: Follower[Any], leader_name: str) -> int:
    """Process the leader's events the follower has not tracked yet; how many there were."""
    if leader_name not in follower.readers:
        leader = application(runner, leader_name)
        assert isinstance(leader, Leader), f"{leader_name} is not a Leader"
        follower.follow(leader_name, leader.notification_log)
    start = follower.recorder.max_tracking_id(leader_name)
    started = time.perf_counter()
    processed = 0
    for notifications in follower.pull_notifications(
        leader_name, start=start, inclusive_of_start=False
    ):
        received = follower.filter_received_notifications(notifications)
        for domain_event, tracking in follower.convert_notifications(leader_name, received):
            follower.process_event(domain_event, tracking)
            processed += 1
    if metrics.enabled:
        metrics.consumed("eventstore", leader_name, processed)
        metrics.batch("eventstore", "follower_sync", started)
    return processed
