"""A master process for the broker restart tests: saves products until told to stop.

``python -m tests.cqrs.restart_master STOP_FILE`` (with the environment of a ``cqrs_consume``
subprocess: test database, exchange, queue) creates a product and updates it every 20 ms until
``STOP_FILE`` exists, then waits for its confirms and sends what it had to store, and prints
``{"saved": n, "pending": left}`` as its last line.
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
    from django_messaging.cqrs.controller import producer
    from django_messaging.cqrs.publishing import wait_for_confirms
    from tests.project.cqrs_app.models import Product

    saved = 0
    while not os.path.exists(stop_file):
        product = Product.objects.create(name=f"restart {saved}")
        product.name = f"restart {saved} updated"
        product.save()  # revision 1: the replica must end with this one
        saved += 1
        time.sleep(0.02)
    wait_for_confirms()
    deadline = time.monotonic() + 60
    while producer.pending_count() and time.monotonic() < deadline:
        producer.flush_pending()
        wait_for_confirms()
        if producer.pending_count():
            time.sleep(0.5)  # the broker may still be starting
    print(json.dumps({"saved": saved, "pending": producer.pending_count()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
