"""Core json serializer vs ``json.dumps`` and ``DjangoJSONEncoder`` on a model-like payload."""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid
from decimal import Decimal

from tests.benchmarks.harness import Scenario, Target, Variant, emit

N = 200_000
PAYLOAD = {
    "id": 12345,
    "name": "A reasonably long product name",
    "price": Decimal("1234.56"),
    "created": dt.datetime(2026, 12, 2, 6, 45, 23, 123456, tzinfo=dt.UTC),
    "day": dt.date(2026, 12, 2),
    "uuid": uuid.UUID("c3c6a9b2-0a4e-4d6e-9f3b-5c2a1d0e8f71"),
    "tags": ["a", "b", "c"],
    "active": True,
    "ratio": 0.25,
}


def measure(key: str) -> None:
    import django
    from django.conf import settings

    settings.configure(USE_TZ=True)
    django.setup()
    if key == "ours":
        from django_messaging.core.serializers import get_serializer

        dumps = get_serializer("json").dumps
    elif key == "django":
        import json

        from django.core.serializers.json import DjangoJSONEncoder

        def dumps(value: object) -> bytes:
            return json.dumps(value, cls=DjangoJSONEncoder).encode()

    else:
        import json

        plain = {
            **PAYLOAD,
            "price": str(PAYLOAD["price"]),
            "created": PAYLOAD["created"].isoformat(),
            "day": PAYLOAD["day"].isoformat(),
            "uuid": str(PAYLOAD["uuid"]),
        }

        def dumps(value: object) -> bytes:
            return json.dumps(plain).encode()

    started = time.perf_counter()
    for _ in range(N):
        dumps(PAYLOAD)
    emit(N, time.perf_counter() - started)


SCENARIOS = [
    Scenario(
        name="core json serializer: dumps of a model-like dict",
        unit="dumps/s",
        ours="django-messaging json",
        variants=[
            Variant("django-messaging json", [__file__, "ours"]),
            Variant("json.dumps + DjangoJSONEncoder", [__file__, "django"]),
            Variant("json.dumps (values pre-converted to str)", [__file__, "stdlib"]),
        ],
        targets=[Target("json.dumps + DjangoJSONEncoder", 1.0)],
        note="The stdlib row gets strings already, so it does less work than the other two.",
    )
]

if __name__ == "__main__":
    measure(sys.argv[1])
