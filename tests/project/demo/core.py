"""Core: one settings dict checked by Django, named serializers, process-wide suppression."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.core import checks

from django_messaging.core import is_suppressed, suppress
from django_messaging.core.serializers import get_serializer
from tests.project.demo.context import DemoContext

TITLE = "core: settings checks, serializers, suppression"


def run(ctx: DemoContext) -> None:
    problems = [m for m in checks.run_checks() if m.id and m.id.startswith("messaging.")]
    ctx.say(f"system checks on MESSAGING: {len(problems)} problem(s)")
    for message in problems:
        ctx.say(f"  {message.id}: {message.msg}")
    json = get_serializer("json")
    value = {
        "at": dt.datetime(2026, 12, 2, 6, 45, 23, 123456, tzinfo=dt.UTC),
        "price": Decimal("10.50"),
        "id": uuid.UUID(int=7),
        "blob": b"\x00\xff",
    }
    ctx.say(f"json serializer: {json.dumps(value).decode()}")
    with suppress():
        ctx.say(f"inside `with suppress():` everything suppressed: {is_suppressed('any-topic')}")
    ctx.say(f"after the block: {is_suppressed('any-topic')}")
    if problems:
        raise RuntimeError("the demo project's MESSAGING settings do not pass the system checks")
