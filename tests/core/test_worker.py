"""The worker runtime, driven through a real subprocess and real signals."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.worker import (
    YOUNG_COLLECTION_THRESHOLD,
    StopRequested,
    Worker,
    child_arguments,
    run_worker,
)
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Seconds a worker process may take to start (Django set up, forked): a loaded machine is slow.
STARTUP = 60.0


def start(log: Path, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.worker_script", str(log), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def events(log: Path) -> dict[int, list[str]]:
    by_pid: dict[int, list[str]] = defaultdict(list)
    if log.exists():
        for line in log.read_text().splitlines():
            pid, event, n = line.split()
            by_pid[int(pid)].append(f"{event} {n}")
    return by_pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_single_worker_finishes_the_unit_then_exits_zero(tmp_path: Path, signum: int) -> None:
    log = tmp_path / "log"
    proc = start(log, 1, 0.6)
    wait_until(
        lambda: any(e == "start 1" for v in events(log).values() for e in v),
        timeout=STARTUP,
        what="unit 1",
    )
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    (lines,) = events(log).values()
    assert lines[-2:] == ["done 1", "stopped 1"], lines  # the unit in progress completed


def test_supervisor_forwards_sigterm_and_leaves_no_orphans(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = start(log, 3, 0.3)
    wait_until(lambda: len(events(log)) == 3, timeout=STARTUP, what="three workers running")
    children = list(events(log))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    final = events(log)
    for pid in children:
        assert final[pid][-1].startswith("stopped"), final[pid]
        assert final[pid][-2].startswith("done"), final[pid]
        assert not alive(pid)


def test_crashed_worker_is_restarted(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = start(log, 2, 0.05, 2)  # every worker process crashes in its second unit
    try:
        wait_until(
            lambda: len(events(log)) >= 4,
            timeout=STARTUP,
            what="crashed workers replaced by new processes",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "restarting in" in out
    crashed = [
        pid for pid, lines in events(log).items() if "stopped 2" in lines and "done 2" not in lines
    ]
    assert crashed, events(log)


def test_too_many_crashes_exit_non_zero_and_stop_the_others(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = start(log, 2, 0.05, 1, 2)  # crash in the first unit, at most 2 restarts
    out, _ = proc.communicate(timeout=STARTUP)
    assert proc.returncode == 1, out
    assert "giving up" in out
    for pid in events(log):
        assert not alive(pid)


def test_killed_child_is_replaced(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = start(log, 2, 0.2)
    try:
        wait_until(lambda: len(events(log)) == 2, timeout=STARTUP, what="two workers")
        victim = next(iter(events(log)))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(events(log)) == 3, timeout=STARTUP, what="a replacement worker")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "exited with -9" in out


def test_child_stopped_on_its_own_is_restarted(tmp_path: Path) -> None:
    """A child SIGTERMed by itself (not through its supervisor) finishes its unit and exits 0;
    the supervisor is not stopping, so the pool would be a worker short: it starts another."""
    log = tmp_path / "log"
    proc = start(log, 2, 0.2)
    try:
        wait_until(lambda: len(events(log)) == 2, timeout=STARTUP, what="two workers")
        victim = next(iter(events(log)))
        os.kill(victim, signal.SIGTERM)
        wait_until(lambda: len(events(log)) == 3, timeout=STARTUP, what="a replacement worker")
        assert events(log)[victim][-1].startswith("stopped"), events(log)[victim]
        assert not alive(victim)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "exited with 0; restarting" in out


def test_children_finish_and_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) must not leave its workers running
    on as orphans: a process manager that restarts it would run a second set beside them."""
    log = tmp_path / "log"
    proc = start(log, 2, 0.3)
    wait_until(lambda: len(events(log)) == 2, timeout=STARTUP, what="two workers")
    children = list(events(log))
    proc.kill()
    proc.communicate(timeout=30)
    wait_until(
        lambda: not any(alive(pid) for pid in children), timeout=STARTUP, what="orphans gone"
    )
    for pid in children:
        assert events(log)[pid][-1].startswith("stopped"), events(log)[pid]  # a graceful stop


class QueryingWorker(Worker):
    def __init__(self, stop: StopRequested, units: int) -> None:
        self.stop_request, self.units = stop, units
        self.connections: list[object] = []
        self.stopped = False

    def run_once(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        self.connections.append(connection.connection)
        if len(self.connections) == self.units:
            self.stop_request.request()

    def stop(self) -> None:
        self.stopped = True


@pytest.mark.django_db(transaction=True)
def test_old_connections_are_closed_between_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # Django's default
    connection.close()  # the next connection takes it
    stop = StopRequested()
    worker = QueryingWorker(stop, 3)
    run_worker(worker, stop)
    assert worker.stopped
    assert len({id(c) for c in worker.connections}) == 3  # a fresh connection for every unit


class CountingWorker(QueryingWorker):
    """Handles one message in each unit ``busy`` marks, none in the others; the unit
    ``broken`` ends with its connection killed under it."""

    def __init__(self, stop: StopRequested, busy: list[bool], broken: int | None = None) -> None:
        super().__init__(stop, len(busy))
        self.busy, self.broken, self.handled = busy, broken, 0

    def run_once(self) -> None:
        super().run_once()
        unit = len(self.connections) - 1
        if unit == self.broken:
            with pytest.raises(OperationalError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        self.handled += self.busy[unit]

    def messages_handled(self) -> int:
        return self.handled


@pytest.mark.django_db(transaction=True)
def test_a_busy_worker_keeps_its_connection_until_a_unit_handles_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # Django's default
    connection.close()  # the next connection takes it
    stop = StopRequested()
    worker = CountingWorker(stop, [True, True, False, True, True])
    run_worker(worker, stop)
    first, second, idle, after_idle, last = (id(c) for c in worker.connections)
    assert first == second == idle  # kept while busy, and through the idle unit itself
    assert after_idle == last != idle  # closed after the unit that handled nothing


@pytest.mark.django_db(transaction=True)
def test_a_busy_worker_replaces_a_connection_that_broke() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("kills its own PostgreSQL backend")
    stop = StopRequested()
    worker = CountingWorker(stop, [True, True, True, True], broken=1)
    run_worker(worker, stop)
    first, broken, replaced, last = (id(c) for c in worker.connections)
    assert first == broken != replaced == last


def test_stop_runs_even_when_a_unit_raises() -> None:
    class Failing(Worker):
        stopped = False

        def run_once(self) -> None:
            raise ValueError("bad unit")

        def stop(self) -> None:
            Failing.stopped = True

    with pytest.raises(ValueError):
        run_worker(Failing())
    assert Failing.stopped


def test_the_loop_runs_with_what_existed_before_it_frozen_and_thawed_after() -> None:
    """The collector's full collections in the loop skip the objects of the start (Django, the
    apps, the worker); they are handed back to it when the worker stops, also after a unit
    raised."""

    class Observing(Worker):
        def __init__(self) -> None:
            self.frozen: list[int] = []

        def run_once(self) -> None:
            self.frozen.append(gc.get_freeze_count())
            raise ValueError("stop here")

    worker = Observing()
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError):
        run_worker(worker)
    assert worker.frozen and worker.frozen[0] > 1000  # the interpreter, Django and the rest
    assert gc.get_freeze_count() == 0


def test_the_loop_collects_young_objects_less_often_and_the_thresholds_come_back_after() -> None:
    """A batch's objects live until the batch is done: the loop collects the youngest generation
    every YOUNG_COLLECTION_THRESHOLD allocations, not Python's 700; the thresholds the process
    had come back when the worker stops, also after a unit raised."""

    class Observing(Worker):
        def __init__(self) -> None:
            self.thresholds: list[tuple[int, int, int]] = []

        def run_once(self) -> None:
            self.thresholds.append(gc.get_threshold())
            raise ValueError("stop here")

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        worker = Observing()
        with pytest.raises(ValueError):
            run_worker(worker)
        assert worker.thresholds == [(YOUNG_COLLECTION_THRESHOLD, 10, 10)]
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_spawned_workers_need_picklable_factories_refused_before_any_start() -> None:
    def factory() -> Worker:
        return Worker()

    assert child_arguments([factory, factory], "fork") == ("fork", [(factory,), (factory,)])
    for method in ("spawn", "forkserver"):
        with pytest.raises(ConfigurationError, match="cannot be pickled"):
            child_arguments([factory, factory], method)
    with pytest.raises(ConfigurationError, match="not available"):
        child_arguments([factory, factory], "teleport")


@pytest.mark.django_db(transaction=True)
def test_forked_workers_never_share_a_pooled_connection(tmp_path: Path) -> None:
    """With Django's connection pool (PostgreSQL, Django 5.1+), closing the connections before
    forking left the pool's own open: each child took the same inherited socket from it, so two
    processes spoke on one database session."""
    import django

    if connection.vendor != "postgresql" or django.VERSION < (5, 1):
        pytest.skip("the connection pool of Django's PostgreSQL backend")
    pytest.importorskip("psycopg_pool")
    options = json.loads(os.environ.get("MESSAGING_TEST_DB_OPTIONS") or "{}")
    options["pool"] = {"min_size": 2}
    log = tmp_path / "backends.log"
    result = subprocess.run(
        [sys.executable, "-m", "tests.core.pool_fork_script", str(log)],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MESSAGING_TEST_DB": "postgres",
            "MESSAGING_TEST_DB_NAME": connection.settings_dict["NAME"],
            "MESSAGING_TEST_DB_OPTIONS": json.dumps(options),
        },
        capture_output=True,
        text=True,
        timeout=STARTUP + 60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    backends: dict[int, set[int]] = defaultdict(set)
    for line in log.read_text().splitlines():
        pid, backend = map(int, line.split())
        backends[pid].add(backend)
    supervisor = backends.pop(supervisor_pid(log))
    assert len(backends) == 2, backends
    first, second = backends.values()
    assert not first & second, f"two workers on one database session: {backends}"
    assert not (first | second) & supervisor, "a worker on the supervisor's session"


def supervisor_pid(log: Path) -> int:
    """The supervisor's pid: the first line of the log is its own."""
    return int(log.read_text().split()[0])
