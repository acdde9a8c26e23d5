"""A master process for the database outage tests: saves products until told to stop.

``python -m tests.cqrs.outage_master STOP_FILE`` (with the environment of a ``cqrs_consume``
subprocess, and MESSAGING_POSTGRES_URL pointing at a proxy) creates a product and updates it
every 20 ms until ``STOP_FILE`` exists; a save the database refuses is counted and the loop goes
on. It then waits for its confirms and prints ``{"saved": n, "failed": f, "pending": left}`` as
its last line. Stored messages are not flushed: what is left pending is what the process left.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(stop_file: str) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
    import django

    django.setup()
    from django.db import InterfaceError, OperationalError, close_old_connections

    from django_messaging.cqrs.controller import producer
    from django_messaging.cqrs.publishing import wait_for_confirms
    from tests.project.cqrs_app.models import Product

    saved = failed = 0
    while not os.path.exists(stop_file):
        try:
            product = Product.objects.create(name=f"outage {saved}")
            product.name = f"outage {saved} updated"
            product.save()
            saved += 1
            if saved % 10 == 0:
                print(f"saved {saved}", flush=True)
        except (OperationalError, InterfaceError) as exc:
            failed += 1
            print(f"save failed: {type(exc).__name__}", flush=True)
            close_old_connections()
        time.sleep(0.02)
    wait_for_confirms()
    result = {"saved": saved, "failed": failed, "pending": producer.pending_count()}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
