"""Fails when an upstream eventsourcing test case stops running against this module.

pytest silently skips abstract classes (eventsourcing-django's factory case never ran for
that reason: it left two abstract methods unimplemented), and a case nobody subclassed runs
nowhere. This test lists every ``TestCase`` the eventsourcing distribution ships for
persistence modules and checks that each one has a concrete subclass in
``test_upstream_conformance`` or ``test_dcb_conformance`` that pytest collects with all of its
test methods, apart from the exceptions written down below with their reasons.
"""

from __future__ import annotations

import inspect
import unittest

import pytest
from eventsourcing.dcb import tests as dcb_tests
from eventsourcing.tests import application, persistence, projection

from tests.eventstore import test_dcb_conformance as dcb_conformance
from tests.eventstore import test_upstream_conformance as conformance

CONFORMANCE_MODULES = (conformance, dcb_conformance)

#: Upstream cases that do not apply to a persistence module, and why.
NOT_APPLICABLE = {
    "RecorderTestCase": "a base class without tests of its own",
    "TranscoderTestCase": "tests the JSON transcoder only; no recorder is involved",
}

#: Upstream test methods a subclass opts out of, and why (checked to be the only ones).
OPTED_OUT = {
    ("TestApplicationRecorderNonEmptyLog", "test_insert_select"): "needs ids from 1",
    ("TestApplicationRecorderNonEmptyLog", "test_performance"): "a timing, run once",
    ("TestApplicationRecorderNonEmptyLog", "test_concurrent_throughput"): "a timing, run once",
    ("TestTextOriginatorIds", "test_performance"): "a timing, run once",
    ("TestTextOriginatorIds", "test_concurrent_throughput"): "a timing, run once",
    ("TestTextOriginatorIds", "test_concurrent_no_conflicts"): "runs for UUID ids",
}


def upstream_cases() -> list[type[unittest.TestCase]]:
    found = []
    for module in (persistence, application, projection, dcb_tests):
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, unittest.TestCase)
                and obj.__module__ == module.__name__
            ):
                found.append(obj)
    return found


def concrete_subclasses(case: type) -> list[type]:
    return [
        obj
        for module in CONFORMANCE_MODULES
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, case) and obj is not case
    ]


def test_the_upstream_case_list_is_not_empty() -> None:
    names = {case.__name__ for case in upstream_cases()}
    assert {
        "AggregateRecorderTestCase",
        "ApplicationRecorderTestCase",
        "TrackingRecorderTestCase",
        "ProcessRecorderTestCase",
        "NonInterleavingNotificationIDsBaseCase",
        "InfrastructureFactoryTestCase",
        "ExampleApplicationTestCase",
        "DCBRecorderTestCase",
        "TaggedDecisionCountersProjectionTestCase",
    } <= names


@pytest.mark.parametrize("case", upstream_cases(), ids=lambda case: case.__name__)
def test_every_upstream_case_runs(case: type[unittest.TestCase]) -> None:
    if case.__name__ in NOT_APPLICABLE:
        return
    subclasses = concrete_subclasses(case)
    assert subclasses, f"no subclass of {case.__name__} in the conformance modules"
    upstream_tests = {name for name in dir(case) if name.startswith("test")}
    for subclass in subclasses:
        assert subclass.__name__.startswith("Test"), f"{subclass.__name__} is not collected"
        assert not inspect.isabstract(subclass), (
            f"{subclass.__name__} is abstract (pytest skips it silently): "
            f"{sorted(subclass.__abstractmethods__)} not implemented"
        )
        collected = set(unittest.TestLoader().getTestCaseNames(subclass))
        for name in upstream_tests - collected:
            assert (subclass.__name__, name) in OPTED_OUT, (
                f"{subclass.__name__}.{name} from {case.__name__} does not run"
            )


def test_opt_outs_are_real() -> None:
    """Each written-down opt-out names a test that exists upstream and really is off."""
    for (class_name, method), _reason in OPTED_OUT.items():
        subclass = getattr(conformance, class_name)
        assert any(method in dir(base) for base in subclass.__mro__[1:])
        assert method not in unittest.TestLoader().getTestCaseNames(subclass)


def test_the_optional_subscribe_case_runs() -> None:
    """``optional_test_insert_subscribe`` runs only where a subclass opts in."""
    for name in ("TestApplicationRecorder", "TestApplicationRecorderNonEmptyLog"):
        assert "test_insert_subscribe" in vars(getattr(conformance, name))


def test_the_dcb_helper_cases_run() -> None:
    """``DCBRecorderTestCase`` has no ``test_`` methods of its own: its checks are the
    ``_test_append_read`` and ``_test_append_subscribe`` helpers, which each subclass calls."""
    for subclass in concrete_subclasses(dcb_tests.DCBRecorderTestCase):
        collected = set(unittest.TestLoader().getTestCaseNames(subclass))
        assert {"test_append_read", "test_append_subscribe"} <= collected, subclass
        for name, helper in (
            ("test_append_read", "_test_append_read"),
            ("test_append_subscribe", "_test_append_subscribe"),
        ):
            source = inspect.getsource(getattr(subclass, name))
            assert f"self.{helper}(" in source, (subclass, name)
