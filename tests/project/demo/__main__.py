"""Run the demo: ``python -m tests.project.demo [step ...]``."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import tempfile
import time

ORDER = ["core", "kafka", "outbox", "cqrs", "eventstore", "flow", "status"]


def main(argv: list[str]) -> int:
    from tests import services

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
    if os.environ.get("MESSAGING_TEST_DB", "sqlite") == "sqlite":
        os.environ.setdefault(
            "MESSAGING_SQLITE_PATH", tempfile.mktemp(prefix="demo-", suffix=".sqlite3")
        )
    broker = services.start_kafka()
    os.environ[services.KAFKA_BOOTSTRAP_ENV] = broker.bootstrap
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        from tests.project.demo.context import DemoContext

        ctx = DemoContext(kafka_bootstrap=broker.bootstrap)
        here = os.path.dirname(__file__)
        available = {m.name for m in pkgutil.iter_modules([here])} - {"context", "__main__"}
        steps = [s for s in ORDER if s in available and (not argv or s in argv)]
        for name in steps:
            module = importlib.import_module(f"tests.project.demo.{name}")
            print(f"\n== {module.TITLE} ==", flush=True)
            started = time.monotonic()
            module.run(ctx)
            print(f"  ({time.monotonic() - started:.1f}s)", flush=True)
        print(f"\ndemo finished: {len(steps)} parts, all as expected")
        return 0
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
