"""The seed's TrainingSchool application, and followers of it, for the tests and the demo."""

from __future__ import annotations

import os
import time
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, DomainEventProtocol, event
from eventsourcing.system import (
    ProcessApplication,
    Runner,
    SingleThreadedRunner,
    System,
)


class TrainingSchool(Application[UUID]):
    def register(self, name: str) -> None:
        dog = Dog(name)
        self.save(dog)

    def add_trick(self, name: str, trick: str) -> None:
        dog: Dog = self.repository.get(Dog.create_id(name))
        dog.add_trick(trick)
        self.save(dog)

    def get_tricks(self, name: str) -> list[str]:
        dog: Dog = self.repository.get(Dog.create_id(name))
        return dog.tricks


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/dogs/{name}")

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class Tally(Aggregate):
    """How many tricks one dog has learnt, kept by :class:`TrickCounter`."""

    @event("Started")
    def __init__(self, dog: UUID) -> None:
        self.dog = dog
        self.count = 0

    @staticmethod
    def create_id(dog: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/tallies/{dog}")

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1


class TrickCounter(ProcessApplication[UUID]):
    """Follows TrainingSchool and counts every dog's tricks in its own event-sourced tallies."""

    @singledispatchmethod
    def policy(
        self, domain_event: DomainEventProtocol[UUID], processing_event: ProcessingEvent[UUID]
    ) -> None:
        """Other events are tracked and otherwise ignored."""

    @policy.register
    def _(self, domain_event: Dog.TrickAdded, processing_event: ProcessingEvent[UUID]) -> None:
        progress = os.environ.get("TRICK_COUNTER_PROGRESS_FILE")
        if progress:  # only the crash test sets this, to kill the process mid-way
            with open(progress, "a") as file:
                file.write(".")
            time.sleep(0.05)
        if getattr(domain_event, "trick", None) == "explode":
            raise RuntimeError("TrickCounter cannot count an exploding trick")
        try:
            tally: Tally = self.repository.get(Tally.create_id(domain_event.originator_id))
        except AggregateNotFoundError:
            tally = Tally(domain_event.originator_id)
        tally.count_one()
        processing_event.collect_events(tally)

    def get_count(self, name: str) -> int:
        try:
            tally: Tally = self.repository.get(Tally.create_id(Dog.create_id(name)))
        except AggregateNotFoundError:
            return 0
        return tally.count


class Registrar(ProcessApplication[UUID]):
    """A second follower: counts registrations, and never fails."""

    #: Called with each event it processes (tests use it to look around mid-sync).
    hook: Any = None

    @singledispatchmethod
    def policy(
        self, domain_event: DomainEventProtocol[UUID], processing_event: ProcessingEvent[UUID]
    ) -> None:
        pass

    @policy.register
    def _(self, domain_event: Dog.Registered, processing_event: ProcessingEvent[UUID]) -> None:
        if Registrar.hook is not None:
            Registrar.hook(domain_event)
        try:
            tally: Tally = self.repository.get(Tally.create_id(UUID(int=0)))
        except AggregateNotFoundError:
            tally = Tally(UUID(int=0))
        tally.count_one()
        processing_event.collect_events(tally)

    def get_registrations(self) -> int:
        try:
            tally: Tally = self.repository.get(Tally.create_id(UUID(int=0)))
        except AggregateNotFoundError:
            return 0
        return tally.count


def training_system() -> System:
    return System(pipes=[[TrainingSchool, TrickCounter], [TrainingSchool, Registrar]])


_runner: Runner[Any] | None = None


def get_runner() -> Runner[Any]:
    """What ``MESSAGING["EVENTSTORE"]["RUNNER"]`` names in the subprocess tests."""
    global _runner
    if _runner is None:
        from django_messaging.eventstore.conf import application_env

        _runner = SingleThreadedRunner(training_system(), env=application_env())
    return _runner
