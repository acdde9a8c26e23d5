"""The base of every long-running management command (``kafka_consume``, ``publish``,
``subscribe``, ``cqrs_consume``): the same flags, the same logging switch, the same exit codes.

=====================  =====================================================================
``--workers N``, -w    N supervised worker processes (one that exits is restarted with back-off)
``--reload``, -r       start again, gracefully, when a Python file changes (development)
``--start-method M``   how worker processes start: ``fork``, ``spawn`` or ``forkserver``
``-v 0``/``2``/``3``   the ``django_messaging`` loggers at WARNING / INFO / DEBUG
``--metrics-port P``   serve Prometheus metrics on ``http://ADDR:P/metrics`` (the ``[metrics]``
                       extra), the counters of every worker process added up
exit 0                 stopped by SIGTERM or SIGINT after finishing the unit of work in hand
exit 1                 a worker kept crashing (see the log)
exit 2                 the command line or the configuration is wrong (nothing was started)
=====================  =====================================================================

A command subclasses :class:`WorkerCommand`, adds its own arguments in ``add_command_arguments``
and returns the factory of one worker from ``worker_factory`` (or several from
``worker_factories``). A seed library's spelling of the worker flag (``--processes``) is kept with
``worker_aliases``. ``metrics_packages`` names the packages whose status figures
(:mod:`django_messaging.core.status`) its ``/metrics`` serves as gauges.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError

from django_messaging.core import metrics
from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.reload import is_reloaded_child, run_reloading
from django_messaging.core.worker import (
    START_METHODS,
    WorkerFactory,
    child_arguments,
    run_workers,
)

__all__ = ["UsageError", "WorkerCommand"]

#: ``-v`` → level of the ``django_messaging`` loggers; 1 (the default) leaves LOGGING alone.
VERBOSITY_LEVELS = {0: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


class UsageError(CommandError):
    """A wrong command line or configuration: exit code 2, nothing started."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=2)


class WorkerCommand(BaseCommand):
    #: Other spellings of ``--workers`` that a seed library documents.
    worker_aliases: Sequence[str] = ()
    #: Packages whose status figures ``/metrics`` serves as gauges (backlog, lag, ...).
    metrics_packages: Sequence[str] = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            "-w",
            *self.worker_aliases,
            dest="workers",
            type=int,
            default=1,
            help="worker processes under one supervisor; one that exits is restarted (default 1)",
        )
        parser.add_argument(
            "--reload",
            "-r",
            action="store_true",
            help="start again, gracefully, when a Python file changes (development)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            metavar="PORT",
            help="serve Prometheus metrics on http://ADDR:PORT/metrics, the counters of every "
            'worker added up (needs pip install "django-messaging[metrics]")',
        )
        parser.add_argument(
            "--metrics-addr",
            default="0.0.0.0",
            metavar="ADDR",
            help="the address --metrics-port listens on (default 0.0.0.0)",
        )
        parser.add_argument(
            "--start-method",
            choices=START_METHODS,
            default=None,
            help="how worker processes start when there are several (default: fork where "
            "the platform can); 'spawn' and 'forkserver' set Django up again in each worker",
        )
        self.add_command_arguments(parser)

    def add_command_arguments(self, parser: CommandParser) -> None:
        """The command's own arguments."""

    def worker_factory(self, **options: Any) -> WorkerFactory:
        """A callable that builds one worker; ``--workers`` runs that many."""
        raise NotImplementedError

    def worker_factories(self, workers: int, **options: Any) -> list[WorkerFactory]:
        return [self.worker_factory(**options)] * workers

    def check_options(self, **options: Any) -> None:
        """Raise :class:`UsageError` for a wrong combination of arguments, before any work."""

    def check(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().check(*args, **kwargs)
        except SystemCheckError as exc:  # a configuration error: exit 2 like a usage error
            raise SystemCheckError(str(exc), returncode=2) from None

    def handle(self, *args: Any, **options: Any) -> None:
        workers = options.pop("workers")
        reload = options.pop("reload")
        metrics_port = options.pop("metrics_port")
        metrics_addr = options.pop("metrics_addr")
        start_method = options.pop("start_method")
        if workers < 1:
            raise UsageError("--workers must be at least 1")
        if metrics_port is not None and not metrics.available():
            raise UsageError(
                '--metrics-port needs prometheus_client: pip install "django-messaging[metrics]"'
            )
        self.check_options(**options)
        level = VERBOSITY_LEVELS.get(options.get("verbosity", 1))
        if level is not None:
            logging.getLogger("django_messaging").setLevel(level)
        if reload and not is_reloaded_child():
            self._exit(run_reloading())
            return
        try:
            factories = self.worker_factories(workers, **options)
            if len(factories) > 1:
                child_arguments(factories, start_method)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from exc
        if metrics_port is None:
            self._exit(run_workers(factories, start_method=start_method))
            return
        directory = self._serve_metrics(metrics_port, metrics_addr)
        try:
            code = run_workers(factories, start_method=start_method)
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        self._exit(code)

    def _serve_metrics(self, port: int, addr: str) -> str | None:
        """Enable the metrics in multiprocess mode and serve them; the run's own directory
        (``None`` when ``PROMETHEUS_MULTIPROC_DIR`` names one the project manages)."""
        given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        directory = given or tempfile.mkdtemp(prefix="django-messaging-metrics-")
        metrics.enable(multiprocess_dir=directory, status_packages=self.metrics_packages)
        try:
            metrics.serve(port, addr)
        except OSError as exc:
            if not given:
                shutil.rmtree(directory, ignore_errors=True)
            raise UsageError(f"--metrics-port {port}: cannot listen on {addr}:{port}: {exc}")
        return None if given else directory

    def _exit(self, code: int) -> None:
        if code:
            self.stderr.write(f"{self.__module__.rpartition('.')[2]}: a worker kept crashing")
            sys.exit(code)
