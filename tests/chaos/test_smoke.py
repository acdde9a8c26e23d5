"""The chaos soak, short: about a minute of load and faults on private services (its own
PostgreSQL, RabbitMQ and Kafka), then the check that nothing was lost. ``nox -s faults`` runs
it; ``nox -s chaos`` runs the full soak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server_restart, pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[2]


def test_nothing_is_lost_under_a_minute_of_faults(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos", "--smoke", "--output", str(tmp_path / "chaos.md")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    report = (tmp_path / "chaos.md").read_text()
    assert "verdict: **PASS**" in report
    assert (tmp_path / "chaos.png").stat().st_size > 0
