"""One outbox relay for every package: stored rows to a broker, each marked sent only once the
broker confirmed it.

A package describes where its rows live with a :class:`RelayStore` (claim, renew, mark sent,
release, reschedule, purge, and a row as an :class:`~django_messaging.core.transports.OutgoingMessage`)
and hands it, with a :class:`~django_messaging.core.transports.Transport`, to :class:`Relay`.
One unit of work:

1. **Claim** a batch of sendable rows with a lease of ``policy.lease`` seconds, renewed every
   third of it while this relay holds them: two live relays never hold the same row, and the
   rows of a relay that died are claimed again seconds later.
2. **Send** them, keeping up to ``policy.window`` batches in flight while the broker confirms.
3. **Mark** exactly the confirmed rows sent. Confirmations are kept until they are recorded:
   during a database outage they wait, and are recorded first once the database is back.
   A store with ``mark_sent_and_claim`` records them in the transaction of the next claim (one
   commit, and on PostgreSQL one round trip, per batch); they are recorded on their own when
   no claim follows. A store that also sets ``claims_ahead`` has that claim run on a database
   thread of the relay (a connection of its own) while the relay sends the batch before it.
4. Rows the broker refused or did not confirm within ``policy.receipt_timeout`` are
   **rescheduled** after ``policy.retry(attempts)`` seconds, until ``policy.max_attempts``;
   rows never written (the connection broke first) are released without counting an attempt.

A store that sets ``ordered`` gets **per-key ordering**: of the rows sharing an ordering key,
one at a time is in flight, in claim order, and when one fails the rows behind it are released
rather than sent ahead of it. Broker and database outages are waited out with back-off
(:class:`~django_messaging.core.reconnect.Backoff`); ``policy.retention`` purges old sent rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from django import db
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from django_messaging.core import metrics, tracing
from django_messaging.core.reconnect import Backoff, database_outage
from django_messaging.core.transports import OutgoingMessage, Transport
from django_messaging.core.worker import Worker

__all__ = ["Relay", "RelayPolicy", "RelayStore", "Retry", "one_transaction"]

logger = logging.getLogger(__name__)

Row = TypeVar("Row")


@dataclass(frozen=True)
class Retry:
    """Rows to give back after a failed attempt."""

    ids: list[Hashable]
    #: Failed attempts so far, this one included.
    attempts: int
    error: str
    #: When they may be claimed again; ``None``: given up (``max_attempts`` reached).
    available_at: dt.datetime | None


class RelayStore(Protocol[Row]):
    """Where a relay's rows live. Every method acts on the rows leased to ``owner`` only.

    A store may also define ``mark_sent_and_claim(owner, sent, size, lease)``: ``mark_sent``
    of ``sent`` then ``claim``, in one transaction (both or neither). The relay then records
    confirmations with its next claim instead of in a statement of their own. With it, a store
    whose ``claims_ahead`` is true has each of those claims run on the relay's database thread
    while the relay sends and collects receipts: its database must take a claim on one
    connection while the relay's own connection renews, releases and reschedules other rows
    (PostgreSQL does; SQLite would make one of them wait for the other's lock).
    """

    #: True: rows sharing an ordering key are sent one at a time, in claim order. The store's
    #: claim must then never return a row while an earlier row of its key is left unsent.
    ordered: bool

    def claim(self, owner: str, size: int, lease: float) -> list[Row]:
        """Lease up to ``size`` sendable rows (scheduled, due, not leased) to ``owner`` for
        ``lease`` seconds; oldest first."""
        ...

    def renew(self, owner: str, ids: Sequence[Hashable], lease: float) -> int:
        """Extend the lease of the rows ``ids`` that ``owner`` still holds; return how many."""
        ...

    def mark_sent(self, owner: str, ids: Sequence[Hashable]) -> None: ...

    def release(self, owner: str, ids: Sequence[Hashable] | None = None) -> int:
        """End the lease of ``ids`` (every row of ``owner`` when ``None``) without counting a
        failed attempt; return how many."""
        ...

    def reschedule(self, owner: str, retries: Sequence[Retry]) -> None: ...

    def purge(self, before: dt.datetime, batch_size: int) -> int:
        """Delete rows sent before ``before``; never one that is not sent."""
        ...

    def row_id(self, row: Row) -> Hashable: ...

    def attempts(self, row: Row) -> int:
        """Failed attempts the row already had."""
        ...

    def ordering_key(self, row: Row) -> str | None: ...

    def to_messages(self, rows: Sequence[Row]) -> tuple[list[OutgoingMessage], dict[Hashable, str]]:
        """The rows as messages (each ``key`` is the row's id), and the ids of rows that cannot
        be encoded with the reason."""
        ...


def one_transaction(
    using: str, statements: Sequence[tuple[str, Sequence[Any]]], *, by_index: bool = False
) -> list[tuple]:
    """Run ``statements`` (SQL, parameters) in one transaction and return the rows of the last
    (none when it returns no rows).

    On PostgreSQL with client-side parameter binding (Django's default) they go as one query
    string: one round trip, the implicit transaction of a multi-statement query (each
    statement still sees what the ones before it committed, under READ COMMITTED). Otherwise,
    and inside a caller's transaction, one statement after the other in ``atomic()``.

    ``by_index``: on PostgreSQL, outside a caller's transaction, the statements read rows
    through indexes only (no sequential or bitmap scans: ``SET LOCAL``, for this transaction).
    A relay's statements find rows by primary key or walk a pending index in order up to a
    ``LIMIT``; before a table's first ``ANALYZE`` (a backlog written and relayed within the
    minute before autovacuum analyzes it) the planner takes every clause for rare and instead
    reads, and sorts, every pending row for each batch.
    """
    connection = connections[using]
    if by_index and connection.vendor == "postgresql" and not connection.in_atomic_block:
        statements = [*_BY_INDEX, *statements]
    if (
        connection.vendor == "postgresql"
        and connection.settings_dict["OPTIONS"].get("server_side_binding") is not True
    ):
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        sql = [statement for statement, _ in statements]
        with connection.cursor() as cursor:
            cursor.execute(
                "; ".join(sql),
                [value for _, params in statements for value in params],
            )
            if is_psycopg3:  # psycopg 2 keeps only the last statement's result
                while cursor.nextset():
                    pass
            return list(cursor.fetchall()) if cursor.description else []
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for statement, params in statements:
            cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


#: ``one_transaction(by_index=True)`` on PostgreSQL: for that transaction only.
_BY_INDEX: list[tuple[str, Sequence[Any]]] = [
    ("SET LOCAL enable_seqscan = off", ()),
    ("SET LOCAL enable_bitmapscan = off", ()),
]

_RETRY = Backoff(initial=1.0, cap=300.0)
_RECONNECT = Backoff(initial=1.0, cap=60.0)
_DATABASE = Backoff(initial=0.25, cap=5.0)


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 500
    #: Batches in flight at once: the next batch is claimed and written while the broker
    #: confirms the previous one.
    window: int = 2
    lease: float = 10.0
    receipt_timeout: float = 30.0
    #: Pause when there is nothing to send.
    idle_wait: float = 1.0
    max_attempts: int | None = None
    #: Seconds before attempt ``n + 1`` after ``n`` failed ones.
    retry: Callable[[int], float] = _RETRY.delay
    reconnect: Backoff = _RECONNECT
    database: Backoff = _DATABASE
    #: Seconds a sent row is kept; ``None``: this relay purges nothing.
    retention: float | None = None
    purge_every: float = 300.0
    purge_batch_size: int = 1000


class Relay(Worker, Generic[Row]):
    name = "relay"
    #: The ``package`` label of this relay's metrics (:mod:`django_messaging.core.metrics`).
    metrics_package = "relay"
    #: ``messaging.system`` of its ``send`` spans (:mod:`django_messaging.core.tracing`).
    messaging_system = "relay"

    def __init__(
        self,
        store: RelayStore[Row],
        transport: Transport | None = None,
        policy: RelayPolicy | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self._policy = policy or RelayPolicy()
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.sent = 0
        #: Rows given back after a failed attempt (refused, unconfirmed, not encodable).
        self.retried = 0
        #: Written, not yet confirmed: id -> (row, when it was written).
        self._inflight: dict[Hashable, tuple[Row, float]] = {}
        #: Confirmed by the broker, not yet recorded in the database (it may be down): kept
        #: until recorded, never sent again by this relay.
        self._confirmed: set[Hashable] = set()
        #: Ordered stores: rows waiting for the row of their key that is in flight.
        self._waiting: dict[str, deque[tuple[Row, OutgoingMessage]]] = defaultdict(deque)
        self._busy_keys: set[str] = set()
        self._next_renewal = 0.0
        self._short_batch = False
        self._connect_failures = 0
        self._next_connect = 0.0
        self._database_failures = 0
        self._next_database_try = 0.0
        self._next_purge = 0.0
        #: The claim running on the database thread, with the confirmations it records.
        self._ahead: Future[list[Row]] | None = None
        self._recording: list[Hashable] = []
        #: Ordering keys whose rows were given back since that claim began.
        self._given_back_keys: set[str | None] = set()
        self._claims: ThreadPoolExecutor | None = None

    @property
    def database_failures(self) -> int:
        """Database errors in a row (0: the database answers)."""
        return self._database_failures

    def current_policy(self) -> RelayPolicy:
        """The policy for the next unit of work (a package reads its live settings here)."""
        return self._policy

    def make_transport(self) -> Transport:
        raise TypeError(f"{type(self).__name__} needs a transport")

    # Worker -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.transport is None:
            self.transport = self.make_transport()
        self.transport.stopped = self.stopping
        logger.info("relay %s starting", self.owner)

    def stop(self) -> None:
        """Wait (bounded) for the receipts of what is in flight, then give back the rest."""
        policy = self.current_policy()
        if self._ahead is not None:
            try:
                self._take_ahead()  # its rows are released below with the others
            except DatabaseError as exc:
                logger.error("relay %s: database error while stopping: %s", self.owner, exc)
        if self._inflight and self.transport is not None:
            deadline = time.monotonic() + policy.receipt_timeout
            try:
                while self._inflight and time.monotonic() < deadline:
                    if not self._collect(0.5, policy):
                        break
            except DatabaseError as exc:
                logger.error("relay %s: database error while stopping: %s", self.owner, exc)
        if self._confirmed:
            try:
                self._record_confirmed()
            except DatabaseError as exc:
                logger.error(
                    "relay %s: %d confirmed messages not recorded as sent (database error: "
                    "%s); they will be sent again",
                    self.owner,
                    len(self._confirmed),
                    exc,
                )
        try:
            if self._inflight:
                self._fail_inflight("relay stopped before the broker confirmed", policy)
            released = self.store.release(self.owner)
        except DatabaseError as exc:
            logger.warning("relay %s could not release its claims: %s", self.owner, exc)
            released = 0
        if released:
            logger.info("relay %s released %d claimed rows", self.owner, released)
        if self._claims is not None:
            self._claims.submit(db.connections.close_all).result()
            self._claims.shutdown()
            self._claims = None
        if self.transport is not None:
            self.transport.close()
        logger.info("relay %s stopped: %d messages confirmed by the broker", self.owner, self.sent)

    def messages_handled(self) -> int:
        """Messages confirmed by the broker since the start."""
        return self.sent

    def run_once(self) -> None:
        policy = self.current_policy()
        wait = self._next_database_try - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.5))
            return
        try:
            self._run_once(policy)
        except DatabaseError as exc:
            self._database_error(exc, policy)
            return
        self._database_failures = 0

    def _database_error(self, exc: DatabaseError, policy: RelayPolicy) -> None:
        """Wait out the database with back-off; confirmations received meanwhile are kept and
        recorded once it is back."""
        self._database_failures += 1
        delay = policy.database.delay(self._database_failures)
        self._next_database_try = time.monotonic() + delay
        logger.error(
            "relay %s: database error (%s, %d in a row), retrying in %.1fs with %d confirmed "
            "messages waiting to be recorded: %s",
            self.owner,
            "unreachable" if database_outage(exc) else "refused",
            self._database_failures,
            delay,
            len(self._confirmed),
            exc,
        )
        db.close_old_connections()

    def _run_once(self, policy: RelayPolicy) -> None:
        # Confirmations waiting to be recorded (the database may just be back) are recorded
        # first: with this unit's claim, or on their own when it claims nothing.
        if not self._ensure_open(policy):
            if self._ahead is not None:
                self._release_ids(self._take_ahead())
            if self._confirmed:
                self._record_confirmed()
            return
        size = policy.batch_size
        started = time.perf_counter()
        rows: list[Row] | None = None
        if self._ahead is not None and self._ahead.done():
            rows = self._take_ahead()
            self._short_batch = len(rows) < size
        held = len(self._inflight) + self._waiting_count() + len(rows or ())
        # After a short batch the backlog is drained: collect receipts before claiming again.
        drained = self._short_batch and bool(held)
        if self._ahead is None and rows != [] and held < size * policy.window and not drained:
            if self._claims_ahead():
                # Claimed (and the confirmations so far recorded) while this batch goes out.
                self._claim_ahead(policy)
            else:
                rows = self._claim(policy)
                self._short_batch = len(rows) < size
        elif self._confirmed and self._ahead is None and (drained or not self._inflight):
            # No claim comes until the last receipts are in: record now. (A window still
            # full goes on collecting: the confirmations that free it go with the next claim.)
            self._record_confirmed()
        claimed = len(rows or ())
        if claimed:
            self._send(rows or [], policy)
            if metrics.enabled:
                metrics.batch(self.metrics_package, "relay_send", started)
        if self._inflight:
            full = len(self._inflight) + self._waiting_count() >= size * policy.window
            # What it confirms is recorded by the next claim, which comes at once (or is
            # running: then the receipts are looked at again soon).
            wait = 0.0 if claimed and not full else 0.002 if self._ahead else 0.2
            self._collect(wait, policy, record=False)
        elif self._ahead is not None:
            wait_for_future([self._ahead], timeout=0.2)
        elif not claimed:
            time.sleep(min(policy.idle_wait, 1.0))
        self._purge(policy)

    # one batch ----------------------------------------------------------------------------
    def flush(self, max_batches: int | None = None) -> int:
        """Send what can be claimed now, a batch at a time, each batch's confirmations awaited;
        stop when nothing is left, after a failure, or after ``max_batches`` batches. Returns
        how many were confirmed. Call :meth:`start` first and :meth:`stop` after."""
        policy = self.current_policy()
        before = self.sent
        batches = 0
        while max_batches is None or batches < max_batches:
            rows = self._claim(policy)
            if not rows:
                break
            if not self._ensure_open(policy):  # connected only when there is something to send
                self.store.release(self.owner)
                break
            batches += 1
            retried = self.retried
            self.send_rows(rows)
            if self.retried > retried or not self.transport or not self.transport.is_open():
                break
        return self.sent - before

    def _claim(self, policy: RelayPolicy) -> list[Row]:
        """Record the confirmations waiting to be recorded and claim a batch: in one
        transaction when the store can. Holding nothing else before, the first renewal is due
        a third of the lease after this claim (rows claimed while others are held go with
        their renewal)."""
        holds = bool(self._inflight or self._waiting)
        claimed_at = time.monotonic()
        together = getattr(self.store, "mark_sent_and_claim", None)
        if self._confirmed and together is not None:
            keys = list(self._confirmed)
            rows: list[Row] = together(self.owner, keys, policy.batch_size, policy.lease)
            self._recorded(keys)
        else:
            if self._confirmed:
                self._record_confirmed()
            rows = self.store.claim(self.owner, policy.batch_size, policy.lease)
        if rows and not holds:
            self._next_renewal = claimed_at + policy.lease / 3
        return rows

    def _claims_ahead(self) -> bool:
        return bool(
            getattr(self.store, "claims_ahead", False)
            and hasattr(self.store, "mark_sent_and_claim")
        )

    def _claim_ahead(self, policy: RelayPolicy) -> None:
        """Start :meth:`_claim`'s work on the database thread; :meth:`_take_ahead` takes it."""
        if self._claims is None:
            self._claims = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name} claims")
        if not (self._inflight or self._waiting):
            self._next_renewal = time.monotonic() + policy.lease / 3
        self._recording = list(self._confirmed)
        self._confirmed.clear()
        self._given_back_keys.clear()
        started = threading.Event()
        self._ahead = self._claims.submit(
            self._claim_on_database_thread,
            started,
            self._recording,
            policy.batch_size,
            policy.lease,
        )
        # The database thread goes first: it builds and sends its statement, then waits on the
        # database without the interpreter. Otherwise its claim waited for the interpreter
        # behind this thread's encoding and writing of the batch (a switch interval, 5 ms, or
        # more) before it even reached the database: a third of each batch's time.
        started.wait(0.05)

    def _claim_on_database_thread(
        self, started: threading.Event, sent: list[Hashable], size: int, lease: float
    ) -> list[Row]:
        started.set()
        try:
            if sent:
                return self.store.mark_sent_and_claim(self.owner, sent, size, lease)  # type: ignore[attr-defined,no-any-return]
            return self.store.claim(self.owner, size, lease)
        except BaseException:
            db.connections.close_all()  # this thread's: opened afresh for the next claim
            raise

    def _take_ahead(self) -> list[Row]:
        """The rows of the claim on the database thread (waiting for it). A row whose ordering
        key had a row given back while the claim ran is released: the claim may have seen that
        row still held by this relay and returned the rows behind it."""
        assert self._ahead is not None
        ahead, recording = self._ahead, self._recording
        self._ahead, self._recording = None, []
        try:
            rows = ahead.result()
        except BaseException:
            self._confirmed.update(recording)  # recorded by the next attempt
            raise
        self._recorded(recording)
        stale = self._given_back_keys
        if stale and self.store.ordered:
            behind = [row for row in rows if self.store.ordering_key(row) in stale]
            if behind:
                self._release_ids(behind)
                rows = [row for row in rows if self.store.ordering_key(row) not in stale]
        self._given_back_keys = set()
        return rows

    def _release_ids(self, rows: Iterable[Row]) -> None:
        ids = [self.store.row_id(row) for row in rows]
        if ids:
            self.store.release(self.owner, ids)

    def _giving_back(self, rows: Iterable[Row]) -> None:
        """Note the ordering keys of rows given back while a claim runs on the database
        thread (see :meth:`_take_ahead`)."""
        if self._ahead is not None and self.store.ordered:
            self._given_back_keys.update(self.store.ordering_key(row) for row in rows)

    def send_rows(self, rows: list[Row]) -> None:
        """Send ``rows`` (claimed by this relay) and wait for their receipts."""
        policy = self.current_policy()
        self._send(rows, policy)
        deadline = time.monotonic() + policy.receipt_timeout + 1
        while self._inflight and time.monotonic() < deadline:
            if not self._collect(0.5, policy):
                break

    def _send(self, rows: Sequence[Row], policy: RelayPolicy) -> None:
        messages, bad = self.store.to_messages(rows)
        by_id = {self.store.row_id(row): row for row in rows}
        if self.store.ordered:
            messages, behind_bad = self._hold_back(messages, by_id, bad)
            if behind_bad:
                self.store.release(self.owner, behind_bad)
        if bad:
            self._reschedule([by_id[key] for key in bad], bad, policy)
        self._write(messages, by_id)

    def _hold_back(
        self,
        messages: list[OutgoingMessage],
        by_id: dict[Hashable, Row],
        bad: dict[Hashable, str],
    ) -> tuple[list[OutgoingMessage], list[Hashable]]:
        """Of each ordering key, the first row goes now and the others wait for it; rows behind
        a row that cannot be encoded are given back."""
        blocked = {self.store.ordering_key(by_id[key]) for key in bad} - {None}
        now: list[OutgoingMessage] = []
        released: list[Hashable] = []
        for message in messages:
            row = by_id[message.key]
            key = self.store.ordering_key(row)
            if key is None:
                now.append(message)
            elif key in blocked:
                released.append(message.key)
            elif key in self._busy_keys:
                self._waiting[key].append((row, message))
            else:
                self._busy_keys.add(key)
                now.append(message)
        return now, released

    def _write(self, messages: list[OutgoingMessage], by_id: dict[Hashable, Row]) -> None:
        if not messages:
            return
        assert self.transport is not None
        now = time.monotonic()
        for message in messages:
            self._inflight[message.key] = (by_id[message.key], now)
        if tracing.enabled:
            tracing.send_all(self.messaging_system, messages)
        unsent = self.transport.send(messages)
        if unsent:  # never written: back to the queue without counting an attempt
            self.retried += len(unsent)
            rows = [self._inflight.pop(key)[0] for key in unsent if key in self._inflight]
            self._release_rows(rows)

    def _collect(self, timeout: float, policy: RelayPolicy, *, record: bool = True) -> bool:
        """Take the broker's confirmations and mark the confirmed rows sent (``record=False``:
        keep them for the caller to record); False when the connection is gone or receipts
        are late."""
        assert self.transport is not None
        self._renew_claims(policy)
        polled = self.transport.poll(timeout)
        following: list[tuple[Row, OutgoingMessage]] = []
        ordered = self.store.ordered
        produced: Counter[str] | None = Counter() if metrics.enabled else None
        for key in polled.confirmed:
            done = self._inflight.pop(key, None)
            if done is None:
                continue
            if produced is not None:
                produced[self.destination_of(done[0])] += 1
            self._confirmed.add(key)
            if ordered:
                next_one = self._next_of(done[0])
                if next_one is not None:
                    following.append(next_one)
        if produced:  # one increment per destination and poll, not per message
            for destination, count in produced.items():
                metrics.produced(self.metrics_package, destination, count)
        if polled.lost:
            for row, message in following:  # released with the rest of their key
                self._waiting[str(self.store.ordering_key(row))].appendleft((row, message))
        else:
            # Written before any statement: a database error must not leave them untracked.
            self._write([m for _, m in following], {m.key: r for r, m in following})
        if self._confirmed and record:
            self._record_confirmed()
        if polled.rejected and not polled.lost:
            self._refused(polled.rejected, polled.error or "refused by the broker", policy)
        if polled.lost:
            self._fail_inflight(polled.error or "connection lost", policy, polled.rejected)
            return False
        if polled.rejected:
            self._reject(polled.rejected, polled.error or "refused by the broker", policy)
        if self._inflight:
            oldest = min(sent_at for _, sent_at in self._inflight.values())
            if time.monotonic() - oldest > policy.receipt_timeout:
                self._fail_inflight(f"no receipt within {policy.receipt_timeout:g}s", policy)
                return False
        return True

    def destination_of(self, row: Row) -> str:
        """The ``destination`` label of a row's metrics: its ``destination`` attribute."""
        return str(getattr(row, "destination", "") or "")

    def _next_of(self, row: Row) -> tuple[Row, OutgoingMessage] | None:
        key = self.store.ordering_key(row)
        if key is None:
            return None
        waiting = self._waiting.get(key)
        if waiting:
            return waiting.popleft()
        self._waiting.pop(key, None)
        self._busy_keys.discard(key)
        return None

    def _reject(self, keys: Sequence[Hashable], error: str, policy: RelayPolicy) -> None:
        """The broker refused these messages, the connection goes on: reschedule them (an
        attempt counted) and give back the rows of their keys waiting behind them."""
        rows = [found[0] for key in keys if (found := self._inflight.pop(key, None)) is not None]
        if not rows:
            return
        logger.error(
            "relay %s: the broker refused %d message(s), rescheduled: %s",
            self.owner,
            len(rows),
            error,
        )
        behind: list[Row] = []
        if self.store.ordered:
            for row in rows:
                key = self.store.ordering_key(row)
                if key is not None:
                    behind.extend(r for r, _ in self._waiting.pop(key, ()))
                    self._busy_keys.discard(key)
        self._reschedule(rows, {self.store.row_id(r): error for r in rows}, policy)
        if behind:
            self.store.release(self.owner, [self.store.row_id(r) for r in behind])

    def _waiting_count(self) -> int:
        return sum(len(rows) for rows in self._waiting.values())

    def _fail_inflight(
        self, error: str, policy: RelayPolicy, rejected: list[Hashable] | None = None
    ) -> None:
        """Give back the rows in flight. When the broker named the messages it refused, only
        those count a failed attempt; the others go again at once, unpenalised."""
        rows = [row for row, _ in self._inflight.values()]
        self._inflight.clear()
        # Rows waiting behind them must not overtake them.
        waiting = [row for queue in self._waiting.values() for row, _ in queue]
        self._waiting.clear()
        self._busy_keys.clear()
        if rows:
            logger.warning(
                "relay %s: %d messages not confirmed (%s); they will be retried",
                self.owner,
                len(rows),
                error,
            )
            row_id = self.store.row_id
            if rejected:
                blamed = set(rejected)
                self._reschedule(
                    [r for r in rows if row_id(r) in blamed],
                    {row_id(r): error for r in rows},
                    policy,
                )
                waiting.extend(r for r in rows if row_id(r) not in blamed)
            else:
                self._reschedule(rows, {row_id(r): error for r in rows}, policy)
        self._release_rows(waiting)
        if self.transport is not None:
            self.transport.close()

    def _refused(self, keys: Sequence[Hashable], error: str, policy: RelayPolicy) -> None:
        """The broker refused these and kept the connection: each counts a failed attempt,
        and the rows of their keys waiting behind them are given back."""
        rows = [self._inflight.pop(key)[0] for key in keys if key in self._inflight]
        if not rows:
            return
        logger.warning("relay %s: %d messages refused (%s)", self.owner, len(rows), error)
        waiting = self._waiting_behind(rows)
        self._reschedule(rows, {self.store.row_id(r): error for r in rows}, policy)
        if waiting:
            self.store.release(self.owner, [self.store.row_id(r) for r in waiting])

    def _release_rows(self, rows: Sequence[Row]) -> None:
        """Give ``rows`` back uncounted, with the rows of their keys waiting behind them."""
        if not rows:
            return
        given_back = [*rows, *self._waiting_behind(rows)]
        self._giving_back(given_back)
        self.store.release(self.owner, [self.store.row_id(row) for row in given_back])

    def _waiting_behind(self, rows: Sequence[Row]) -> list[Row]:
        """Ordered stores: take the rows waiting behind ``rows``' keys, and free the keys."""
        waiting: list[Row] = []
        if self.store.ordered:
            for row in rows:
                key = self.store.ordering_key(row)
                if key is not None:
                    waiting.extend(r for r, _ in self._waiting.pop(key, ()))
                    self._busy_keys.discard(key)
        return waiting

    def _renew_claims(self, policy: RelayPolicy) -> None:
        """Extend the lease of the rows this relay holds (in flight, waiting, or confirmed and
        not yet recorded) every third of the lease."""
        now = time.monotonic()
        if now < self._next_renewal:
            return
        self._next_renewal = now + policy.lease / 3
        ids = [*self._inflight, *self._confirmed]
        ids.extend(self.store.row_id(row) for rows in self._waiting.values() for row, _ in rows)
        held = len(ids)
        if not held:
            return
        try:
            # By id: a row this relay lost track of (after a database error) is left to expire
            # and be claimed again rather than held for as long as the relay lives.
            renewed = self.store.renew(self.owner, ids, policy.lease)
        except DatabaseError as exc:
            logger.warning(
                "relay %s could not renew its claims on %d rows: %s", self.owner, held, exc
            )
            return
        if renewed < held:
            logger.warning(
                "relay %s renewed %d of the %d rows it holds: the others' leases ended (paused "
                "longer than the lease?) and another relay may send them too",
                self.owner,
                renewed,
                held,
            )

    def _record_confirmed(self) -> None:
        """Mark the confirmed rows sent; on a database error they stay confirmed, to be
        recorded on the next attempt."""
        keys = list(self._confirmed)
        self.store.mark_sent(self.owner, keys)
        self._recorded(keys)

    def _recorded(self, keys: list[Hashable]) -> None:
        self._confirmed.difference_update(keys)
        self.sent += len(keys)

    def _reschedule(
        self, rows: Sequence[Row], errors: dict[Hashable, str], policy: RelayPolicy
    ) -> None:
        self._giving_back(rows)
        now = timezone.now()
        groups: dict[tuple[int, str], list[Hashable]] = defaultdict(list)
        for row in rows:
            row_id = self.store.row_id(row)
            attempts = self.store.attempts(row) + 1
            groups[(attempts, errors[row_id][:2000])].append(row_id)
            if metrics.enabled:
                given_up = policy.max_attempts is not None and attempts >= policy.max_attempts
                count = metrics.dead_lettered if given_up else metrics.retried
                count(self.metrics_package, self.destination_of(row))
        retries = []
        self.retried += len(rows)
        for (attempts, error), ids in groups.items():
            available_at: dt.datetime | None = now + dt.timedelta(seconds=policy.retry(attempts))
            if policy.max_attempts is not None and attempts >= policy.max_attempts:
                logger.error(
                    "relay %s: %d message(s) failed %d times and are given up: %s",
                    self.owner,
                    len(ids),
                    attempts,
                    error,
                )
                available_at = None
            retries.append(Retry(ids, attempts, error, available_at))
        self.store.reschedule(self.owner, retries)

    def _purge(self, policy: RelayPolicy) -> None:
        if policy.retention is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + policy.purge_every
        before = timezone.now() - dt.timedelta(seconds=policy.retention)
        purged = self.store.purge(before, policy.purge_batch_size)
        if purged:
            logger.info("relay %s purged %d rows sent before %s", self.owner, purged, before)

    def _ensure_open(self, policy: RelayPolicy) -> bool:
        assert self.transport is not None
        if self.transport.is_open():
            return True
        if self._inflight:
            self._collect(0.0, policy)  # what the broker confirmed or refused before the loss
        if self._inflight:
            self._fail_inflight("connection lost", policy)
        now = time.monotonic()
        if now < self._next_connect:
            time.sleep(min(self._next_connect - now, 0.5))
            return False
        try:
            self.transport.open()
        except Exception as exc:
            if self.stopping():
                logger.info("relay %s stopping: %s", self.owner, exc)
                return False
            self._connect_failures += 1
            delay = policy.reconnect.delay(self._connect_failures)
            self._next_connect = time.monotonic() + delay
            logger.warning(
                "relay %s cannot reach the broker (attempt %d), retrying in %.1fs: %s",
                self.owner,
                self._connect_failures,
                delay,
                exc,
            )
            return False
        if self._connect_failures:
            logger.info(
                "relay %s reconnected after %d failed attempts", self.owner, self._connect_failures
            )
        else:
            logger.info("relay %s connected to the broker", self.owner)
        self._connect_failures = 0
        return True
