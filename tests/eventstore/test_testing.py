"""``django_messaging.eventstore.testing`` against live followers: one scenario, followed by a
started multi-threaded runner (subscriptions woken by commits) and by ``follow()`` in the test,
gives the same result."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import TestCase
from eventsourcing.system import MultiThreadedRunner, Runner, SingleThreadedRunner, System

from django_messaging.eventstore.testing import EventLog, follow
from tests.eventstore.base import AVAILABLE_APPS, EventStoreTestCase
from tests.helpers import readme_section, wait_until
from tests.project.eventstore_app.domain import Dog, Registrar, TrainingSchool, TrickCounter

ENV = {"PERSISTENCE_MODULE": "django_messaging.eventstore"}


def system(suffix: str) -> tuple[System, type, type, type]:
    """The training system under application names of its own."""
    school = type(f"TrainingSchool{suffix}", (TrainingSchool,), {})
    counter = type(f"TrickCounter{suffix}", (TrickCounter,), {})
    registrar = type(f"Registrar{suffix}", (Registrar,), {})
    return System(pipes=[[school, counter], [school, registrar]]), school, counter, registrar


def scenario(school: Any) -> None:
    school.register("Fido")
    school.add_trick("Fido", "sit")
    school.add_trick("Fido", "beg")
    try:
        with transaction.atomic():
            school.register("Ghost")
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    school.register("Rex")
    school.add_trick("Rex", "roll over")


def state(runner: Runner[Any], counter: type, registrar: type) -> dict[str, Any]:
    counting = runner.get(counter)
    return {
        "Fido": counting.get_count("Fido"),
        "Rex": counting.get_count("Rex"),
        "Ghost": counting.get_count("Ghost"),
        "registrations": runner.get(registrar).get_registrations(),
    }


class SameResultTests(EventStoreTestCase):
    def test_same_result_with_live_followers_and_with_follow(self) -> None:
        # Live: a started runner whose followers are woken by the leader's commits.
        live_system, school, counter, registrar = system("Live")
        live = MultiThreadedRunner(live_system, env=ENV)
        live.start()
        try:
            scenario(live.get(school))
            expected = {"Fido": 2, "Rex": 1, "Ghost": 0, "registrations": 2}
            wait_until(lambda: state(live, counter, registrar) == expected, what="followers")
            live_state = state(live, counter, registrar)
            live_topics = [n.topic.rsplit(".", 1)[-1] for n in _all(live.get(school))]
        finally:
            live.stop()

        # In the test: a runner that is not started, and follow().
        test_system, school, counter, registrar = system("Test")
        runner = SingleThreadedRunner(test_system, env=ENV)
        leader = runner.get(school)
        with EventLog(leader) as log:
            scenario(leader)
        assert state(runner, counter, registrar) == {
            "Fido": 0,
            "Rex": 0,
            "Ghost": 0,
            "registrations": 0,
        }
        processed = follow(runner)
        assert state(runner, counter, registrar) == live_state
        assert [m.headers["topic"].rsplit(".", 1)[-1] for m in log.notifications()] == live_topics
        assert processed == {
            "TrickCounterTest": {"TrainingSchoolTest": 5},
            "RegistrarTest": {"TrainingSchoolTest": 5},
        }
        assert follow(runner) == {
            "TrickCounterTest": {"TrainingSchoolTest": 0},
            "RegistrarTest": {"TrainingSchoolTest": 0},
        }
        event = log.assert_recorded("TrainingSchoolTest", Dog.TrickAdded, trick="roll over")
        assert event.originator_id == Dog.create_id("Rex")
        with pytest.raises(AssertionError, match=r"no Dog\.TrickAdded"):
            log.assert_recorded("TrainingSchoolTest", Dog.TrickAdded, trick="fetch")


def _all(app: Any) -> list[Any]:
    return list(app.recorder.select_notifications(None, 1000))


class FollowInsideATestCase(TestCase):
    available_apps = AVAILABLE_APPS

    def test_follow_in_the_test_transaction(self) -> None:
        test_system, school, counter, registrar = system("Case")
        runner = SingleThreadedRunner(test_system, env=ENV)
        with EventLog(runner.get(school)) as log:
            runner.get(school).register("Fido")
            runner.get(school).add_trick("Fido", "sit")
        assert [type(e).__qualname__ for e in log.events()] == ["Dog.Registered", "Dog.TrickAdded"]
        follow(runner, "TrickCounterCase")
        assert runner.get(counter).get_count("Fido") == 1
        assert runner.get(registrar).get_registrations() == 0  # not asked for


@pytest.mark.django_db
def test_the_pytest_fixture(messaging_follow: Any) -> None:
    test_system, school, counter, _registrar = system("Fixture")
    runner = SingleThreadedRunner(test_system, env=ENV)
    runner.get(school).register("Fido")
    runner.get(school).add_trick("Fido", "sit")
    assert messaging_follow(runner)["TrickCounterFixture"] == {"TrainingSchoolFixture": 2}
    assert runner.get(counter).get_count("Fido") == 1


@pytest.mark.django_db
def test_the_readme_example_runs(monkeypatch) -> None:
    from tests.project.eventstore_app import domain

    app = types.ModuleType("my_app")
    app.__path__ = []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_app", app)
    monkeypatch.setitem(sys.modules, "my_app.domain", domain)
    example = readme_section(Path(__file__).resolve().parents[2] / "packages/eventstore/README.md")
    example["test_tricks_are_counted"](follow, None)
    case = example["TrickTests"]("test_a_rolled_back_trick_is_not_counted")
    case.test_a_rolled_back_trick_is_not_counted()
