"""The loop every long-running command shares (``kafka_consume``, ``publish``, ``subscribe``,
``cqrs_consume``).

A :class:`Worker` does one bounded unit of work per :meth:`Worker.run_once` call (a poll and the
batch it returned, one relay batch, ...). :func:`run_worker` calls it until SIGTERM or SIGINT
arrives, then lets the unit in progress finish, calls :meth:`Worker.stop` (commit, ack, close)
and returns, so the command exits 0. Between units it closes database connections the way
Django does between requests (:func:`release_connections`), so that a database restart or
``CONN_MAX_AGE`` never breaks a long-lived worker. Every
``MESSAGING["STATUS"]["SAMPLE_INTERVAL"]`` seconds it records the status figures for the admin
dashboard (:mod:`django_messaging.core.sampling`).

:func:`run_workers` runs several workers as child processes under a supervisor: a child that
exits while the supervisor is not stopping (a crash, a kill, a SIGTERM sent to the child alone,
whatever its exit code) is restarted with exponential backoff, up to ``max_restarts`` within
``restart_window`` seconds; past that the supervisor stops the others and returns a non-zero
exit code. SIGTERM/SIGINT to the supervisor is forwarded to every child and waited for, so no
child is ever orphaned.

Children are forked where the platform can fork, whatever Python's default start method is,
unless ``start_method`` asks for ``spawn`` or ``forkserver`` (``--start-method`` of the
commands). Under those a child imports the project afresh: it runs
``django.setup()`` (settings from ``DJANGO_SETTINGS_MODULE``, the app registries filled by each
app's ``ready()``) and takes the parent's ``django_messaging`` log level before it unpickles its
worker factory, so a factory must be picklable and may name things that only exist once the apps
are ready (a consumer registry key, for example).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_sentinels
from types import FrameType
from typing import Any

import django
from django import db

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.reconnect import Backoff
from django_messaging.core.sampling import Sampler

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Worker:
    """One unit-of-work loop. Subclasses implement :meth:`run_once`; it must return within a
    second or so when idle (poll with a timeout), so that a stop request is honoured promptly."""

    name: str = "worker"
    #: Seconds a stop request may wait for the unit in progress and :meth:`stop`; past them the
    #: process exits at once with status 1, leaving what it held to the broker to redeliver.
    #: ``None``: wait as long as it takes.
    shutdown_timeout: float | None = None
    #: Set by :func:`run_worker` before :meth:`start`: true once a stop was requested. A unit
    #: that may wait long on a broker (a connect, a receipt) can give up when it is.
    stop_requested: StopRequested | None = None

    def stopping(self) -> bool:
        """True once a stop was requested (see :attr:`stop_requested`)."""
        return bool(self.stop_requested)

    def start(self) -> None:
        """Open connections, subscribe. Called once before the first unit."""

    def run_once(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Commit or acknowledge what was done, close connections. Called once, always."""

    def messages_handled(self) -> int | None:
        """Messages handled since the start, for the ``throughput`` samples of
        :mod:`django_messaging.core.sampling`; ``None``: this worker does not count them."""
        return None


class StopRequested:
    """Set by the first SIGTERM/SIGINT; a second one exits at once (status 130)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.event.is_set()

    def request(self, signum: int | None = None) -> None:
        self.signal = signum
        self.event.set()

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            logger.warning("second %s: exiting without waiting", signal.Signals(signum).name)
            os._exit(130)
        logger.info("%s received: finishing the current unit of work", signal.Signals(signum).name)
        self.request(signum)


def _install(stop: StopRequested) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, stop.handler) for sig in STOP_SIGNALS}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def stop_on_signals(stop: StopRequested | None = None) -> Iterator[StopRequested]:
    """``with stop_on_signals() as stop:`` SIGTERM/SIGINT set ``stop`` instead of killing.

    For commands that are not a unit-of-work loop but must end a step cleanly. Handlers are
    installed only in the main thread and restored on exit.
    """
    stop = StopRequested() if stop is None else stop
    previous = _install(stop)
    try:
        yield stop
    finally:
        _restore(previous)


#: Allocations between two collections of the youngest generation while a worker loop runs
#: (Python's default: 700). A batch of a few hundred messages or rows allocates thousands of
#: objects that live until the batch is done; at 700 the collector walks them again several
#: times per batch, and promotes them, for no garbage (they are freed by reference counting).
YOUNG_COLLECTION_THRESHOLD = 10_000


def run_worker(worker: Worker, stop: StopRequested | None = None) -> None:
    """Run ``worker`` in this process until a stop signal (or ``stop.request()``).

    Exceptions from the worker propagate after :meth:`Worker.stop` has run. With a
    ``worker.shutdown_timeout``, a stop request that is not done within it exits the process.
    """
    with stop_on_signals(stop) as stop:
        stopped = threading.Event()
        if worker.shutdown_timeout is not None:
            threading.Thread(
                target=_exit_when_stop_overruns,
                args=(worker, stop, stopped, float(worker.shutdown_timeout)),
                name=f"{worker.name} shutdown deadline",
                daemon=True,
            ).start()
        thresholds = gc.get_threshold()
        worker.stop_requested = stop
        try:
            worker.start()
            sampler = Sampler.for_worker(worker)
            # What exists now (Django, the apps, the worker) lives as long as the loop: the
            # collector need not walk it again in each of the loop's full collections.
            gc.freeze()
            gc.set_threshold(max(thresholds[0], YOUNG_COLLECTION_THRESHOLD), *thresholds[1:])
            handled = worker.messages_handled()
            try:
                while not stop:
                    worker.run_once()
                    if sampler is not None:
                        sampler.tick()
                    handled, before = worker.messages_handled(), handled
                    release_connections(busy=handled is not None and handled != before)
            finally:
                worker.stop()
                db.connections.close_all()
        finally:
            gc.unfreeze()
            gc.set_threshold(*thresholds)
            stopped.set()
        logger.info("%s stopped cleanly", worker.name)


def release_connections(busy: bool = False) -> None:
    """Django's ``close_old_connections()`` between two units of work: a connection that had
    an error and no longer works, or that has outlived its ``CONN_MAX_AGE``, is closed (the next
    query opens a new one). One exception: a connection with ``CONN_MAX_AGE = 0`` (Django's
    default, "close at the end of each request") stays open while the worker is ``busy`` (the
    unit handled messages) and is closed after the first unit that handled none. Otherwise a
    busy worker would connect again for every batch, which costs more than the batch's
    queries."""
    for connection in db.connections.all(initialized_only=True):
        if (
            busy
            and connection.connection is not None
            and connection.settings_dict.get("CONN_MAX_AGE") == 0
        ):
            close_at, connection.close_at = connection.close_at, None
            try:
                connection.close_if_unusable_or_obsolete()
            finally:
                connection.close_at = close_at
        else:
            connection.close_if_unusable_or_obsolete()


def _exit_when_stop_overruns(
    worker: Worker, stop: StopRequested, stopped: threading.Event, timeout: float
) -> None:
    while not stop.event.wait(0.5):
        if stopped.is_set():
            return
    if stopped.wait(timeout):
        return
    logger.error(
        "%s did not stop within %.0fs of the stop request: exiting without finishing the unit "
        "of work in progress (the broker redelivers what it held)",
        worker.name,
        timeout,
    )
    os._exit(1)


# --- supervision of several workers -------------------------------------------------------

WorkerFactory = Callable[[], Worker]


@dataclass
class _Child:
    index: int
    factory: WorkerFactory
    process: Any = None
    restarts: list[float] = field(default_factory=list)
    next_start: float = 0.0


#: What ``--start-method`` accepts: those of ``multiprocessing`` that this platform offers.
START_METHODS: tuple[str, ...] = tuple(multiprocessing.get_all_start_methods())


def _stop_with_parent(parent: int) -> None:
    """Ask the kernel for a SIGTERM when the supervisor dies, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``), so that its workers finish their unit and exit instead of running on
    as orphans beside the supervisor a process manager starts again.

    ``parent`` is the supervisor's pid, or 0 under ``forkserver``: a worker's parent is then the
    fork server, which exits when the supervisor dies."""
    watched = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    # The parent died before the request: nobody will send the signal.
    if os.getppid() != watched or (parent and watched != parent):
        os.kill(os.getpid(), signal.SIGTERM)


def _child_main(
    parent: int, factory: WorkerFactory | bytes, log_level: int = logging.NOTSET
) -> None:
    # A fresh process: own signal handling, own database connections.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    try:
        if isinstance(factory, bytes):  # spawn, forkserver: nothing of the parent's state here
            django.setup()
            logging.getLogger("django_messaging").setLevel(log_level)
            factory = pickle.loads(factory)  # bytes from our own parent process
        stop = StopRequested()
        with stop_on_signals(stop):
            _stop_with_parent(parent)
            run_worker(factory(), stop)  # type: ignore[operator]
    except BaseException:
        logger.exception("worker crashed")
        os._exit(1)
    os._exit(0)


def child_arguments(
    factories: Sequence[WorkerFactory], start_method: str | None = None
) -> tuple[str, list[tuple[Any, ...]]]:
    """The start method that :func:`run_workers` would use and each child's arguments: the
    factory itself for ``fork``; for the other methods, the pickled factory and the log level.

    Raises :class:`ConfigurationError` when the method is not available or a factory cannot
    travel to a child; commands call it before starting anything.
    """
    method = start_method or ("fork" if "fork" in START_METHODS else None)
    method = method or multiprocessing.get_start_method()
    if method not in START_METHODS:
        raise ConfigurationError(
            f"start method {method!r} is not available here (choose from "
            f"{', '.join(START_METHODS)})"
        )
    if method == "fork":
        return method, [(factory,) for factory in factories]
    from django.conf import ENVIRONMENT_VARIABLE

    if not os.environ.get(ENVIRONMENT_VARIABLE):
        raise ConfigurationError(
            f"the {method!r} start method needs {ENVIRONMENT_VARIABLE}: a worker process sets "
            "Django up again from it (settings.configure() does not reach it); use 'fork'"
        )
    level = logging.getLogger("django_messaging").level
    args: list[tuple[Any, ...]] = []
    for factory in factories:
        try:
            args.append((pickle.dumps(factory), level))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"worker factory {factory!r} cannot be pickled, which the {method!r} start "
                f"method needs ({exc}); use 'fork' or a factory importable by name"
            ) from exc
    return method, args


def close_connections_and_pools() -> None:
    """Close this thread's database connections and Django's connection pools (PostgreSQL,
    ``OPTIONS["pool"]``) with the connections they hold open; what is queried next opens a new
    session. Before a fork: a forked child inherits every open socket, and two processes
    speaking on one database session corrupt each other's statements and transactions (a
    closed connection alone goes back to its pool, still open)."""
    db.connections.close_all()
    for connection in db.connections.all():
        close_pool = getattr(connection, "close_pool", None)  # PostgreSQL, Django 5.1+
        if close_pool is not None and connection.settings_dict.get("OPTIONS", {}).get("pool"):
            close_pool()


def run_workers(
    factories: Sequence[WorkerFactory],
    *,
    max_restarts: int = 5,
    restart_window: float = 60.0,
    backoff: tuple[float, float] = (0.5, 30.0),
    stop: StopRequested | None = None,
    grace: float = 30.0,
    start_method: str | None = None,
) -> int:
    """Run each factory's worker in its own process; return the command's exit code.

    One factory runs in this process (no child). ``max_restarts=0`` turns restarts off: the first
    exit of a child stops everything with exit code 1. ``start_method`` (``"fork"``, ``"spawn"``,
    ``"forkserver"``) overrides the program's ``multiprocessing`` start method; with any but
    ``fork`` every factory must be picklable (:class:`ConfigurationError` otherwise, before any
    child starts).
    """
    stop = StopRequested() if stop is None else stop
    if len(factories) == 1:
        run_worker(factories[0](), stop)
        return 0

    method, arguments = child_arguments(factories, start_method)
    context: Any = multiprocessing.get_context(method)
    children = [_Child(i, f) for i, f in enumerate(factories)]
    pause = Backoff(*backoff)
    previous = _install(stop)
    exit_code = 0
    try:
        while not stop:
            now = time.monotonic()
            for child in children:
                if child.process is None and now >= child.next_start:
                    close_connections_and_pools()  # before each fork, restarts too
                    child.process = context.Process(
                        target=_child_main,
                        args=(
                            0 if method == "forkserver" else os.getpid(),
                            *arguments[child.index],
                        ),
                        name=f"worker-{child.index}",
                    )
                    child.process.start()
                    logger.info("started worker %d (pid %d)", child.index, child.process.pid)
            running = [c.process.sentinel for c in children if c.process is not None]
            wait_for_sentinels(running, timeout=0.2)
            for child in children:
                proc = child.process
                if proc is None or proc.is_alive():
                    continue
                proc.join()
                child.process = None
                if stop:
                    continue
                # Whatever its exit code (a SIGTERM sent to the child alone ends it with 0),
                # a worker that ends while the supervisor runs on is replaced.
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < restart_window]
                if len(child.restarts) >= max_restarts:
                    logger.error(
                        "worker %d exited with %s and was restarted %d times in %.0fs: giving up",
                        child.index,
                        proc.exitcode,
                        len(child.restarts),
                        restart_window,
                    )
                    exit_code = 1
                    stop.request()
                    break
                delay = pause.delay(len(child.restarts) + 1)
                child.restarts.append(now)
                child.next_start = now + delay
                logger.warning(
                    "worker %d exited with %s; restarting in %.1fs",
                    child.index,
                    proc.exitcode,
                    delay,
                )
    finally:
        _stop_children(children, grace)
        _restore(previous)
    return exit_code


def _stop_children(children: list[_Child], grace: float) -> None:
    alive = [c.process for c in children if c.process is not None and c.process.is_alive()]
    for proc in alive:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for proc in alive:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            logger.error("worker pid %d did not stop within %.0fs: killing it", proc.pid, grace)
            proc.kill()
            proc.join()
