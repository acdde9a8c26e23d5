"""Concurrent DCB appenders with conflicting append conditions, against the real database.

Every round, each worker reads the head of a query for one "seat" tag, waits until all
workers have read, then tries to claim the seat with the append condition "fail if an event
with this tag exists after the head I read", and appends one unconditional event too.
Exactly one claim per seat may win, and the positions of all appends together must be
1, 2, 3... with none lost or repeated. Workers are threads (one database session each) and,
in the second test, processes.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from typing import Any

from django.db import connections
from eventsourcing.dcb.api import DCBAppendCondition, DCBEvent, DCBQuery, DCBQueryItem
from eventsourcing.persistence import IntegrityError

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from tests.eventstore.base import EventStoreTestCase

WORKERS = 6
ROUNDS = 12
APP = "dcb-seats"

#: (worker, round, claimed position or None, positions of the unconditional appends)
Outcome = tuple[int, int, "int | None", list[int]]


def seat_query(seat: int) -> DCBQuery:
    return DCBQuery(items=[DCBQueryItem(types=["SeatClaimed"], tags=[f"seat-{seat}"])])


def contend(alias: str, worker: int, barrier: Any, results: Any) -> None:
    """One worker: ``ROUNDS`` claims under conditions, each followed by a free append."""
    recorder = DjangoDCBRecorder(APP, alias)
    try:
        for seat in range(ROUNDS):
            head = recorder.read(seat_query(seat)).head
            barrier.wait(timeout=60)
            claimed: int | None = None
            try:
                claimed = recorder.append(
                    [DCBEvent("SeatClaimed", str(worker).encode(), [f"seat-{seat}"])],
                    DCBAppendCondition(seat_query(seat), after=head),
                )
            except IntegrityError as exc:
                # Only a failed condition counts as a lost claim; anything else is a defect.
                if not str(exc).startswith("Append condition failed"):
                    raise
            free = recorder.append([DCBEvent("Noise", b"", [f"worker-{worker}"])])
            results.append((worker, seat, claimed, [free]))
    except BaseException as exc:
        results.append((worker, -1, None, [repr(exc)]))
        barrier.abort()
        raise
    finally:
        connections.close_all()


class DCBContentionChecks(EventStoreTestCase):
    def check(self, outcomes: list[Outcome]) -> None:
        errors = [o for o in outcomes if o[1] == -1]
        assert not errors, errors
        assert len(outcomes) == WORKERS * ROUNDS
        winners = Counter(seat for _, seat, claimed, _ in outcomes if claimed is not None)
        assert winners == dict.fromkeys(range(ROUNDS), 1), winners

        returned = [claimed for _, _, claimed, _ in outcomes if claimed is not None]
        returned += [p for *_, free in outcomes for p in free]
        total = ROUNDS + WORKERS * ROUNDS
        assert sorted(returned) == list(range(1, total + 1))

        recorder = DjangoDCBRecorder(APP, self.db_alias)
        stored = list(recorder.read())
        assert [e.position for e in stored] == list(range(1, total + 1))
        for seat in range(ROUNDS):
            claims = list(recorder.read(seat_query(seat)))
            assert len(claims) == 1, (seat, claims)
            (winner,) = [
                (w, claimed) for w, s, claimed, _ in outcomes if s == seat and claimed is not None
            ]
            assert claims[0].event.data == str(winner[0]).encode()
            assert claims[0].position == winner[1]


class TestDCBContentionThreads(DCBContentionChecks):
    def test_one_claim_wins_per_seat(self) -> None:
        barrier = threading.Barrier(WORKERS)
        outcomes: list[Outcome] = []
        threads = [
            threading.Thread(target=contend, args=(self.db_alias, w, barrier, outcomes))
            for w in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
        self.check(outcomes)


class TestDCBContentionProcesses(DCBContentionChecks):
    def test_one_claim_wins_per_seat(self) -> None:
        context = multiprocessing.get_context("fork")
        connections.close_all()  # nothing open is shared with the children
        with context.Manager() as manager:
            barrier = manager.Barrier(WORKERS)
            results = manager.list()
            processes = [
                context.Process(target=contend, args=(self.db_alias, w, barrier, results))
                for w in range(WORKERS)
            ]
            for process in processes:
                process.start()
            for process in processes:
                process.join(timeout=120)
                assert process.exitcode == 0, process.exitcode
            outcomes = list(results)
        self.check(outcomes)
