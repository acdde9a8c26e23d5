"""A worker command for the signal and crash tests: ``python -m tests.core.worker_script``.

Arguments: ``LOG WORKERS UNIT_SECONDS [crash-at-unit] [max_restarts]``. Every worker appends
``<pid> start|done|stopped <n>`` lines to LOG; a crash raises inside a unit.
"""

from __future__ import annotations

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from django_messaging.core.worker import Worker, run_workers  # noqa: E402


class LoggingWorker(Worker):
    name = "logging-worker"

    def __init__(self, log: str, unit: float, crash_at: int) -> None:
        self.log, self.unit, self.crash_at, self.count = log, unit, crash_at, 0

    def write(self, event: str) -> None:
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()} {event} {self.count}\n")

    def start(self) -> None:
        self.write("started")

    def run_once(self) -> None:
        self.count += 1
        self.write("start")
        time.sleep(self.unit)
        if self.count == self.crash_at:
            raise RuntimeError("boom")
        self.write("done")

    def stop(self) -> None:
        self.write("stopped")


def main() -> int:
    log, workers, unit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    crash_at = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    max_restarts = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    factories = [lambda: LoggingWorker(log, unit, crash_at) for _ in range(workers)]
    return run_workers(factories, max_restarts=max_restarts, backoff=(0.1, 0.5), grace=10)


if __name__ == "__main__":
    sys.exit(main())
