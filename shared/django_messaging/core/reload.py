"""``--reload`` for long-running commands: restart the command when a Python file changes.

The command runs in a child process (the same command line, marked by ``RELOADED_ENV``). This
process watches the Python files of the modules it has loaded, as ``runserver`` does, and on a
change stops the child gracefully (SIGTERM: it finishes and acknowledges the unit of work in
progress) and starts it again. A child that fails, say on a syntax error just saved, is started
again after the next change. SIGTERM/SIGINT here are forwarded to the child and waited for.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

from django.utils import autoreload

from django_messaging.core.worker import stop_on_signals

logger = logging.getLogger(__name__)

RELOADED_ENV = "DJANGO_MESSAGING_RELOADED"


def is_reloaded_child() -> bool:
    """True in the child that :func:`run_reloading` started (which must not reload again)."""
    return os.environ.get(RELOADED_ENV) == "1"


def _mtimes() -> dict[Path, float]:
    mtimes = {}
    for path in autoreload.iter_all_python_module_files():
        try:
            mtimes[path] = path.stat().st_mtime
        except OSError:
            continue  # a module loaded from a zip file, or removed since
    return mtimes


def _changed(before: dict[Path, float]) -> Path | None:
    for path, mtime in before.items():
        try:
            if path.stat().st_mtime != mtime:
                return path
        except OSError:
            return path
    return None


def _stop(child: subprocess.Popen, grace: float) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            logger.error("pid %d did not stop within %.0fs: killing it", child.pid, grace)
            child.kill()
    return child.wait()


def run_reloading(interval: float = 1.0, grace: float = 30.0) -> int:
    """Run this process's command line in a child, restarting it on changes; its exit code."""
    arguments = [str(a) for a in autoreload.get_child_arguments()]
    env = {**os.environ, RELOADED_ENV: "1"}
    with stop_on_signals() as stop:
        while True:
            child = subprocess.Popen(arguments, env=env)
            watched = _mtimes()
            logger.info(
                "watching %d files for changes (pid %d runs the command)", len(watched), child.pid
            )
            changed = None
            while not stop and not changed:
                stop.event.wait(interval)
                changed = _changed(watched)
                if child.poll() is not None and not changed:
                    if child.returncode == 0:
                        return 0
                    logger.error(
                        "the command exited with %d; waiting for a change", child.returncode
                    )
                    while not stop and not changed:
                        stop.event.wait(interval)
                        changed = _changed(watched)
            code = _stop(child, grace)
            if stop:
                return code
            logger.info("%s changed: restarting", changed)
