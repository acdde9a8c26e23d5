"""Two forked workers on Django's connection pool: ``python -m tests.core.pool_fork_script LOG``.

The supervisor queries the database before it forks (its pool then holds open connections). Each
worker appends ``<pid> <backend pid>`` to LOG for every query; the first to have run 20 asks
the supervisor to stop.
"""

from __future__ import annotations

import os
import signal
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from django.db import connection  # noqa: E402

from django_messaging.core.worker import Worker, run_workers  # noqa: E402

QUERIES = 20


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.01)")
        return cursor.fetchone()[0]


class BackendPidWorker(Worker):
    name = "backend-pid-worker"

    def __init__(self, log: str) -> None:
        self.log, self.count = log, 0

    def run_once(self) -> None:
        pid = backend_pid()
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()} {pid}\n")
        self.count += 1
        if self.count == QUERIES:
            try:  # the first worker there, alone: a second SIGTERM would not wait for the others
                os.close(os.open(f"{self.log}.stopping", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os.kill(os.getppid(), signal.SIGTERM)


def main() -> int:
    log = sys.argv[1]
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()} {backend_pid()}\n")
    factories = [lambda: BackendPidWorker(log) for _ in range(2)]
    return run_workers(factories, max_restarts=0, grace=10)


if __name__ == "__main__":
    sys.exit(main())
