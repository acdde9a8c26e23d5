"""``manage.py sync_followers``: catch followers of an eventsourcing system up with their leaders."""

from __future__ import annotations

import logging
import signal
import time
from contextlib import nullcontext
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction
from eventsourcing.system import Follower, Leader, Runner

from django_messaging.core import metrics
from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.reconnect import Backoff
from django_messaging.core.worker import StopRequested, stop_on_signals
from django_messaging.eventstore.errors import outage
from django_messaging.eventstore.runners import get_runner

logger = logging.getLogger(__name__)


class _DryRun(Exception):
    """Raised at the end of a dry-run follower so that its transaction rolls back."""


class _Stopped(Exception):
    """A stop was requested while waiting for the database to come back."""


class Command(BaseCommand):
    help = (
        "Pull and process the events that followers (ProcessApplication instances) of the "
        "eventsourcing system have not processed yet, one transaction per follower.\n\n"
        "The runner comes from MESSAGING['EVENTSTORE']['RUNNER'] (or EVENTSOURCING_RUNNER), "
        "else from the one AppConfig attribute holding an eventsourcing.system.Runner.\n\n"
        "Examples:\n"
        "  manage.py sync_followers                    # every follower\n"
        "  manage.py sync_followers TrickCounter -v 2  # one follower, with event counts\n"
        "  manage.py sync_followers --dry-run          # process, then roll everything back\n\n"
        "When the database becomes unreachable, the follower in progress rolls back and is "
        "synchronised again once the database is back.\n\n"
        "SIGTERM or SIGINT lets the follower in progress finish (and commit), then stops; a "
        "second one exits at once. The exit status is 1 when a follower failed or was left out."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        from argparse import RawDescriptionHelpFormatter

        kwargs.setdefault("formatter_class", RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "followers",
            nargs="*",
            metavar="follower",
            help="name of a follower to synchronise (default: all followers of the system)",
        )
        parser.add_argument(
            "-n",
            "--dry-run",
            action="store_true",
            help="load and process every unseen event, then roll back all changes",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity: int = options["verbosity"]
        dry_run: bool = options["dry_run"]
        try:
            runner = get_runner()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        known = list(runner.system.followers)
        selected: list[str] = options["followers"] or known
        unknown = [name for name in selected if name not in known]
        if unknown:
            raise CommandError(
                f"Unknown follower(s): {', '.join(unknown)}. "
                f"Followers of the system: {', '.join(known) or '(none)'}"
            )
        if verbosity >= 1:
            if options["followers"]:
                self.stdout.write(f"{len(selected)} follower(s) selected")
            else:
                self.stdout.write(f"All followers ({len(selected)})")
            if dry_run:
                self.stdout.write(
                    self.style.WARNING("Dry run: every change will be rolled back at the end")
                )
        with stop_on_signals() as stop:
            failed, left_out = self._sync_all(runner, selected, dry_run, verbosity, stop)
        problems = []
        if failed:
            if verbosity == 1:
                self.stdout.write("Run again with --verbosity 2 to see the errors.")
            problems.append(
                f"{len(failed)} of {len(selected)} follower(s) failed: {', '.join(failed)}"
            )
        if left_out:
            reason = signal.Signals(stop.signal).name if stop.signal else "a stop request"
            problems.append(f"stopped by {reason}; not synchronised: {', '.join(left_out)}")
        if problems:
            raise CommandError("; ".join(problems))

    def _sync_all(
        self,
        runner: Runner[Any],
        selected: list[str],
        dry_run: bool,
        verbosity: int,
        stop: StopRequested,
    ) -> tuple[list[str], list[str]]:
        """Synchronise the followers one by one; (failed, left out by a stop request)."""
        failed: list[str] = []
        for number, name in enumerate(selected, start=1):
            if stop:
                return failed, selected[number - 1 :]
            if verbosity >= 1:
                self.stdout.write(f"[{number}/{len(selected)}] Synchronizing {name}... ", ending="")
                self.stdout.flush()
            try:
                counts = self._sync_through_outages(runner, name, dry_run, stop)
            except _Stopped:
                return failed, selected[number - 1 :]
            except Exception as exc:
                failed.append(name)
                logger.exception("sync_followers: follower %s failed", name)
                if verbosity >= 1:
                    self.stdout.write(self.style.ERROR("FAILED"))
                if verbosity >= 2:
                    self.stdout.write(f"\t{type(exc).__name__}: {exc}")
                continue
            if verbosity >= 1:
                self.stdout.write(self.style.SUCCESS("OK (dry-run)" if dry_run else "OK"))
            if verbosity >= 2:
                for leader, count in counts.items():
                    self.stdout.write(f"\t{count} events from {leader} processed")
        return failed, []

    def _sync_through_outages(
        self, runner: Runner[Any], name: str, dry_run: bool, stop: StopRequested
    ) -> dict[str, int]:
        """:meth:`_sync`, made again (from the last commit) while the database is away."""
        backoff = Backoff()
        attempt = 0
        while True:
            try:
                return self._sync(runner, name, dry_run)
            except Exception as exc:
                if not outage(exc):
                    raise
                attempt += 1
                if attempt == 1:
                    logger.warning(
                        "sync_followers: database unreachable while synchronising %s (%s); "
                        "retrying until it is back",
                        name,
                        exc,
                    )
            connections.close_all()
            _forget_cached_aggregates(_app(runner, name))
            if not backoff.wait(attempt, stop.event):
                raise _Stopped

    def _sync(self, runner: Runner[Any], name: str, dry_run: bool) -> dict[str, int]:
        follower = _app(runner, name)
        assert isinstance(follower, Follower), f"{name} is not a Follower"
        using = getattr(follower.recorder, "using", None)
        if dry_run and using is None:
            raise CommandError(
                f"{name} does not store its events with django_messaging.eventstore, so a dry "
                "run could not roll its changes back"
            )
        counts: dict[str, int] = {}
        block = transaction.atomic(using=using) if using is not None else nullcontext()
        try:
            with block:
                for leader_name in runner.system.follows[name]:
                    counts[leader_name] = _pull_and_process(runner, follower, leader_name)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return counts


def _app(runner: Runner[Any], name: str) -> Any:
    applications = getattr(runner, "apps", None)
    if isinstance(applications, dict) and name in applications:
        return applications[name]
    return runner.get(runner.system.get_app_cls(name))


def _forget_cached_aggregates(application: Any) -> None:
    """Drop cached aggregates: they may hold changes of a transaction that was rolled back."""
    cache = getattr(getattr(application, "repository", None), "cache", None)
    if cache is not None:
        for aggregate_id in list(cache.cache):
            cache.get(aggregate_id, evict=True)


def _pull_and_process(runner: Runner[Any], follower: Follower[Any], leader_name: str) -> int:
    """Process the leader's events the follower has not tracked yet; how many there were."""
    if leader_name not in follower.readers:
        leader = _app(runner, leader_name)
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
