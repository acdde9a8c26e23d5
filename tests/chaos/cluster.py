"""Private services (PostgreSQL, RabbitMQ, Tansu), the TCP proxies the workers reach the
database and RabbitMQ through, and the workers themselves, restarted as a process manager would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests import services
from tests.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    """The services of one soak, started side by side and destroyed by :meth:`destroy`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run = f"chaos_{uuid.uuid4().hex[:8]}"
        with ThreadPoolExecutor(3) as pool:
            starting = [
                pool.submit(start)
                for start in (
                    services.start_private_postgres,
                    services.start_private_rabbitmq,
                    services.start_kafka,
                )
            ]
            try:
                self.postgres, self.rabbit, self.kafka = (f.result() for f in starting)
            except BaseException:  # one failed, or a stop signal came: none may outlive us
                pool.shutdown(wait=True)
                for f in starting:
                    if f.exception() is None:
                        service = f.result()
                        (getattr(service, "destroy", None) or service.stop)()
                raise
        with psycopg.connect(self.postgres.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.run}"')
        stomp = services.host_port(self.rabbit.stomp_address, 61613)
        self.proxies = {
            "postgres": TcpProxy(("127.0.0.1", self.postgres.port)).start(),
            "amqp": TcpProxy(("127.0.0.1", self.rabbit.amqp_port)).start(),
            "stomp": TcpProxy(stomp).start(),
        }
        self.topic = f"chaos-{self.run}"
        self.group = f"chaos-group-{self.run}"
        self.cqrs_queue = f"chaos_replica_{self.run}"
        self.outbox_queue = f"chaos-sub-{self.run}"
        self.destination = f"/topic/outbox_test_plain_{self.run}"  # PlainModel's, for this run

    def env(self, direct: bool = False) -> dict[str, str]:
        """What a Django process of the soak runs with: through the proxies, or ``direct``."""
        pg = self.postgres.port if direct else self.proxies["postgres"].port
        amqp = self.rabbit.amqp_port if direct else self.proxies["amqp"].port
        stomp = self.rabbit.stomp_port if direct else self.proxies["stomp"].port
        return {
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.project.settings",
            "MESSAGING_TEST_DB": "postgres",
            "MESSAGING_TEST_DB_NAME": self.run,
            "MESSAGING_POSTGRES_URL": f"postgres://postgres@127.0.0.1:{pg}/postgres",
            "MESSAGING_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{amqp}/%2F",
            "MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{stomp}",
            services.KAFKA_BOOTSTRAP_ENV: self.kafka.bootstrap,
            "MESSAGING_CQRS_EXCHANGE": f"chaos_{self.run}",
            "MESSAGING_CQRS_QUEUE": self.cqrs_queue,
            "MESSAGING_CQRS_MAX_RETRIES": "5",
            "MESSAGING_EVENTSTORE_RUNNER": "tests.project.eventstore_app.domain.get_runner",
            "KAFKA_APP_TOPIC_CHAOS": self.topic,
            "KAFKA_APP_GROUP_CHAOS": self.group,
            "MESSAGING_LOG_LEVEL": "INFO",
        }

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"],
            env={**os.environ, **self.env(direct=True)},
            cwd=ROOT,
            check=True,
        )

    def destroy(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        for stop in (self.kafka.stop, self.rabbit.destroy, self.postgres.destroy):
            try:
                stop()
            except Exception as exc:  # the others must go whatever happens to one
                print(f"teardown: {exc!r}", file=sys.stderr)


@dataclass
class Worker:
    """One supervised command: restarted ``delay`` seconds after it exits, as systemd's
    ``Restart=always`` would; with ``KillMode=process``: what it forked is left to end by itself
    (and must, :meth:`orphans`).
    ``periodic`` commands (``sync_followers``) exit by themselves and are run again."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    periodic: bool = False
    delay: float = 1.0
    process: subprocess.Popen[bytes] | None = None
    exits: list[tuple[float, int, str]] = field(default_factory=list)  # (time, code, cause)
    expected: str = ""  # the signal the harness just sent, if any
    starts: int = 0
    retired: bool = False
    groups: list[int] = field(default_factory=list)  # process groups of exited runs

    def start(self) -> None:
        if self.retired:
            return
        with self.log.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.argv],
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """Kill the process group at once, for good (the harness is stopping on an error)."""
        self.retired = True
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.expected = signal.Signals(signum).name
            self.process.send_signal(signum)

    def children(self) -> list[int]:
        if self.process is None:
            return []
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def reap(self) -> bool:
        """Record an exit and kill what the process left behind; ``True`` when it exited."""
        if self.process is None or self.process.poll() is None:
            return False
        code = self.process.returncode
        self.groups.append(self.process.pid)  # what a killed supervisor forked must end by itself
        self.exits.append((time.time(), code, self.expected or ("run" if self.periodic else "")))
        self.expected, self.process = "", None
        return True

    def orphans(self) -> list[int]:
        """Process groups of earlier runs that still have a live process; killed, for good."""
        left = []
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
                left.append(group)
            except ProcessLookupError:
                pass
        return left

    def unexpected_exits(self) -> list[tuple[float, int, str]]:
        """Exits nobody asked for: a crash, or a failure of a periodic run."""
        return [e for e in self.exits if (e[2] == "" or (e[2] == "run" and e[1] != 0))]

    def stop(self, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        self.expected = "SIGTERM"
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self.reap()
        return code


class Supervisor(threading.Thread):
    """Restarts every worker that exits, until :meth:`halt`."""

    def __init__(self, workers: list[Worker]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self._halt = threading.Event()
        self._due: dict[str, float] = {}

    def run(self) -> None:
        while not self._halt.wait(0.1):
            now = time.monotonic()
            for worker in self.workers:
                if worker.reap():
                    self._due[worker.name] = now + worker.delay
                due = self._due.get(worker.name, 0)
                if worker.process is None and now >= due and not self._halt.is_set():
                    worker.start()

    def halt(self) -> None:
        self._halt.set()
        self.join()


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its live children (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            pass
    return total
