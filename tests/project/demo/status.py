"""The health of every package after the tour, as a probe would read it."""

from __future__ import annotations

import json
from io import StringIO

from django.core.management import call_command

from tests.project.demo.context import DemoContext

TITLE = "manage.py messaging_status: every package's health in one table"


def run(ctx: DemoContext) -> None:
    out = StringIO()
    call_command("messaging_status", "--timeout", "5", stdout=out)
    for line in out.getvalue().splitlines():
        ctx.say(line)
    out = StringIO()
    call_command("messaging_status", "--json", "--max-backlog", "0", "--max-lag", "0", stdout=out)
    figures = json.loads(out.getvalue())["figures"]
    ctx.say(
        f"--json --max-backlog 0 --max-lag 0: {len(figures)} figures, exit code 0 "
        "(every message sent, every consumer and follower caught up)"
    )
