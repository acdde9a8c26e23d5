"""``manage.py messaging_status`` and the registry of status sources in core."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from django_messaging.core import status
from django_messaging.core.status import Figure, Kind

ROOT = Path(__file__).resolve().parents[2]


def test_every_installed_package_registers_its_sources() -> None:
    installed = {app.rpartition(".")[2] for app in settings.INSTALLED_APPS}
    expected = {
        ("kafka", "kafka"),
        ("outbox", "database"),
        ("cqrs", "database"),
        ("cqrs", "rabbitmq"),
        ("eventstore", "database"),
    }
    assert set(status.sources()) == {s for s in expected if s[0] in installed}


@pytest.fixture
def probe_package() -> Iterator[list[object]]:
    """A package of this test's own reporting what the test puts in the list."""
    values: list[object] = []

    def source(timeout: float) -> list[Figure]:
        if values and isinstance(values[0], Exception):
            raise values[0]
        return [Figure("probe", "probe_backlog", Kind.BACKLOG, float(values[0]))]

    status.register("probe", "thing", source)
    yield values
    status.unregister("probe", "thing")


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("messaging_status", "--package", "probe", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), ""


def test_limits_and_exit_codes(probe_package: list[object]) -> None:
    probe_package.append(5)
    code, out, _ = run()
    assert code == 0
    assert out.splitlines()[1].split() == ["probe", "probe_backlog", "-", "5", "-"]
    assert run("--max-backlog", "5")[0] == 0
    code, out, message = run("--max-backlog", "4", "--max-lag", "0")
    assert code == 1
    assert out.splitlines()[1].split() == ["probe", "probe_backlog", "-", "5", "4", "EXCEEDED"]
    assert message == "probe probe_backlog = 5 > 4"
    code, out, _ = run("--json", "--max-backlog", "4")
    assert json.loads(out) == {
        "exit_code": 1,
        "figures": [
            {
                "package": "probe",
                "metric": "probe_backlog",
                "kind": "backlog",
                "labels": {},
                "value": 5.0,
                "limit": 4.0,
                "exceeded": True,
            }
        ],
        "problems": [],
    }


def test_unreachable_and_failing_sources(probe_package: list[object]) -> None:
    probe_package.append(status.Unreachable("Thing at thing:1: refused"))
    code, out, message = run("--max-backlog", "0")
    assert code == 3
    assert "probe (thing): UNREACHABLE: Thing at thing:1: refused" in out
    assert message == "probe: Thing at thing:1: refused"
    probe_package[0] = ValueError("a bug")
    code, out, message = run()
    assert code == 4
    assert "probe (thing): FAILED: ValueError: a bug" in out


def test_wrong_command_lines_exit_2() -> None:
    with pytest.raises(CommandError) as raised:
        call_command("messaging_status", "--package", "nosuch", stdout=StringIO())
    assert raised.value.returncode == 2
    assert "no figures for nosuch" in str(raised.value)
    result = subprocess.run(
        [sys.executable, "-m", "django", "messaging_status", "--max-lag", "-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr


def test_help_documents_the_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "django", "messaging_status", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for line in (
        "0  every figure",
        "1  a figure is above",
        "3  a broker or database",
        "--max-lag N",
    ):
        assert line in result.stdout


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="a database server on a port nothing listens on: the PostgreSQL sessions run this",
)
def test_unreachable_database_exits_3() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MESSAGING_POSTGRES_URL": f"postgres://postgres@127.0.0.1:{port}/postgres",
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
    }
    refused = f"port {port} failed: Connection refused Is the server running"
    options = json.loads(os.environ.get("MESSAGING_TEST_DB_OPTIONS") or "{}")
    if options.get("pool"):
        # Django's connection pool waits for a connection up to its timeout, then says so.
        pool = options["pool"] if isinstance(options["pool"], dict) else {}
        options["pool"] = {**pool, "timeout": 1}
        env["MESSAGING_TEST_DB_OPTIONS"] = json.dumps(options)
        refused = "couldn't get a connection after 1.00 sec"
    result = subprocess.run(
        [sys.executable, "-m", "django", "messaging_status", "--package", "outbox"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "outbox (database): UNREACHABLE: database unreachable" in result.stdout
    assert refused in result.stdout
