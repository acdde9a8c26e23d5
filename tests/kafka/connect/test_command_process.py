"""``python -m django kafka_connect`` as a real process of the test project: discovery of
``kafka_app/connectors.py``, output and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.kafka.connect.connect_server import FakeConnect

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = "tests.kafka.connect.project_settings"


def kafka_connect(*args: str, host: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MESSAGING_TEST_CONNECT_HOST"}
    if host is not None:
        env["MESSAGING_TEST_CONNECT_HOST"] = host
    command = [sys.executable, "-m", "django", "kafka_connect", *args]
    command += ["--settings", SETTINGS, "--no-color"]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_list_shows_the_discovered_connectors() -> None:
    result = kafka_connect("--list")

    assert result.returncode == 0, result.stderr
    assert "ProjectFileSource  [tests.project.kafka_app.connectors.ProjectFileSource]" in (
        result.stdout
    )
    assert "ProjectRetiredSource (marked for removal)" in result.stdout


def test_deploy_then_failure_exit_codes(connect_server: FakeConnect) -> None:
    connect_server.add("ProjectRetiredSource", {"connector.class": "x"})

    deployed = kafka_connect("--validate", "--publish", "--check-status", host=connect_server.url)

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "[publish 1/2] ProjectFileSource: created" in deployed.stdout
    assert "[publish 2/2] ProjectRetiredSource: deleted (marked for removal)" in deployed.stdout
    assert "2 connector(s): all succeeded." in deployed.stdout
    assert list(connect_server.connectors) == ["ProjectFileSource"]

    connect_server.script_states("ProjectFileSource", ("RUNNING", ["FAILED"]), trace="disk full")
    failed = kafka_connect("ProjectFileSource", "--check-status", host=connect_server.url)
    assert failed.returncode == 1
    assert "ProjectFileSource: FAILED: RUNNING (task 0 FAILED); task 0: disk full" in failed.stderr
    assert "CommandError: 1 of 1 connector(s) failed: ProjectFileSource (check-status)" in (
        failed.stderr
    )

    ignored = kafka_connect(
        "ProjectFileSource", "--check-status", "--ignore-failures", host=connect_server.url
    )
    assert ignored.returncode == 0
    assert "(ignored: --ignore-failures)" in ignored.stderr


def test_usage_errors_exit_non_zero() -> None:
    nothing = kafka_connect("ProjectFileSource")
    assert nothing.returncode == 2
    assert "Nothing to do for 'ProjectFileSource'" in nothing.stderr

    no_host = kafka_connect("--publish")
    assert no_host.returncode == 1
    assert "CONNECT_HOST'] is not set" in no_host.stderr
