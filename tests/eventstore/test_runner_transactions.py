"""Started system runners and saves inside a caller's ``transaction.atomic`` block.

Followers must see an application's new events only once they are committed, whichever
runner moves them: a rolled-back event never reaches a follower (its notification id is handed
out again to the next event), and an event committed after its save is still processed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import transaction
from django.test import TestCase
from eventsourcing.system import (
    MultiThreadedRunner,
    NewMultiThreadedRunner,
    NewSingleThreadedRunner,
    Runner,
    SingleThreadedRunner,
)

from tests.eventstore.base import AVAILABLE_APPS, EventStoreTestCase
from tests.helpers import wait_until
from tests.project.eventstore_app import domain
from tests.project.eventstore_app.domain import Registrar, TrainingSchool, TrickCounter

ENV = {"PERSISTENCE_MODULE": "django_messaging.eventstore"}


class Rollback(Exception):
    pass


class StartedRunnerCase(EventStoreTestCase):
    __test__ = False
    runner_class: type[Runner[Any]]

    def setUp(self) -> None:
        super().setUp()
        self.runner = self.runner_class(domain.training_system(), env=ENV)
        self.runner.start()
        self.school: TrainingSchool = self.runner.get(TrainingSchool)
        self.counter: TrickCounter = self.runner.get(TrickCounter)
        self.registrar: Registrar = self.runner.get(Registrar)

    def tearDown(self) -> None:
        try:
            self.stop_runner()
        finally:
            super().tearDown()

    def stop_runner(self) -> None:
        """Stop the runner once; errors of its threads are raised here."""
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.stop()

    def runner_failed(self) -> bool:
        errored = getattr(self.runner, "has_errored", None)
        return errored is not None and errored.is_set()

    def processed(self, name: str, tricks: int) -> bool:
        if self.runner_failed():
            self.stop_runner()  # raises what the follower thread raised
        return self.counter.get_count(name) == tricks

    def tracked(self, follower: Any) -> int | None:
        return follower.recorder.max_tracking_id("TrainingSchool")

    def test_a_rolled_back_save_never_reaches_the_followers(self) -> None:
        with pytest.raises(Rollback), transaction.atomic():
            self.school.register("Ghost")
            self.school.add_trick("Ghost", "vanish")
            raise Rollback
        # The rolled-back ids 1 and 2 are handed out again.
        self.school.register("Fido")
        self.school.add_trick("Fido", "sit")
        wait_until(lambda: self.processed("Fido", 1), what="TrickCounter counting Fido's trick")
        wait_until(lambda: self.tracked(self.registrar) == 2, what="Registrar at id 2")
        self.stop_runner()
        assert self.counter.get_count("Ghost") == 0
        assert self.registrar.get_registrations() == 1
        assert self.tracked(self.counter) == 2

    def test_a_rolled_back_savepoint_never_reaches_the_followers(self) -> None:
        with transaction.atomic():
            self.school.register("Fido")
            with pytest.raises(Rollback), transaction.atomic():
                self.school.add_trick("Fido", "vanish")
                raise Rollback
            self.school.add_trick("Fido", "sit")
        wait_until(lambda: self.processed("Fido", 1), what="TrickCounter counting Fido's trick")
        wait_until(lambda: self.tracked(self.registrar) == 2, what="Registrar at id 2")
        self.stop_runner()
        assert self.counter.get_count("Fido") == 1
        assert self.tracked(self.counter) == 2

    def test_a_save_committed_later_reaches_the_followers(self) -> None:
        with transaction.atomic():
            self.school.register("Fido")
            self.school.add_trick("Fido", "sit")
            # The caller's transaction goes on with other work for a while; a follower that
            # looked at the log meanwhile found nothing committed yet.
            time.sleep(0.3)
        wait_until(lambda: self.processed("Fido", 1), what="TrickCounter counting Fido's trick")
        self.stop_runner()
        assert self.tracked(self.counter) == 2


class TestSingleThreadedRunner(StartedRunnerCase):
    __test__ = True
    runner_class = SingleThreadedRunner

    def test_a_follower_error_is_raised_after_the_commit(self) -> None:
        with (
            pytest.raises(Exception, match="cannot count an exploding trick"),
            transaction.atomic(),
        ):
            self.school.register("Fido")
            self.school.add_trick("Fido", "explode")
        assert self.school.get_tricks("Fido") == ["explode"]  # committed all the same


class TestNewSingleThreadedRunner(StartedRunnerCase):
    __test__ = True
    runner_class = NewSingleThreadedRunner


class TestMultiThreadedRunner(StartedRunnerCase):
    __test__ = True
    runner_class = MultiThreadedRunner


class TestNewMultiThreadedRunner(StartedRunnerCase):
    __test__ = True
    runner_class = NewMultiThreadedRunner


class TestInsideDjangoTestCase(TestCase):
    """A ``TestCase`` runs each test in a transaction that never commits: followers get the
    events when the test runs the commit callbacks (as the README says)."""

    available_apps = AVAILABLE_APPS

    def test_followers_run_with_the_commit_callbacks(self) -> None:
        runner = SingleThreadedRunner(domain.training_system(), env=ENV)
        runner.start()
        try:
            school = runner.get(TrainingSchool)
            counter = runner.get(TrickCounter)
            with self.captureOnCommitCallbacks() as callbacks:
                school.register("Fido")
                school.add_trick("Fido", "sit")
            assert counter.get_count("Fido") == 0
            assert len(callbacks) >= 2
            with self.captureOnCommitCallbacks(execute=True):
                school.add_trick("Fido", "beg")
            assert counter.get_count("Fido") == 2
        finally:
            runner.stop()
