"""Commit hooks in tests: what ``transaction.on_commit`` would run, run at the right moment.

A ``django.test.TestCase`` (and pytest-django's ``django_db``) wraps each test in a transaction
that is rolled back at the end, so ``on_commit`` callbacks never run by themselves. Messaging
code waits for the commit (CQRS publishes after it, the outbox subscriber acknowledges after
it), so a test must say when "the commit" is: :func:`committed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

__all__ = ["committed", "only_test_transaction"]

logger = logging.getLogger(__name__)


def only_test_transaction(using: str = DEFAULT_DB_ALIAS) -> bool:
    """True when the only transactions open on ``using`` are those of the test case: what
    the code under test left behind is as good as committed."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return False
    blocks = getattr(connection, "atomic_blocks", None)
    if not blocks:
        return False
    return all(getattr(block, "_from_testcase", False) for block in blocks)


@contextmanager
def committed(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """On leaving the block, run the ``on_commit`` callbacks registered in it as a commit
    would, when only the test case's transaction is open; elsewhere leave them to Django.

    Callbacks of savepoints that were rolled back are dropped by Django and so never run here
    either; ``robust`` callbacks log their errors, the others raise. Callbacks registered by
    callbacks run too.

        with committed():
            Author.objects.create(name="Ann")   # its CQRS message goes out at the "commit"
    """
    connection = connections[using]
    start = len(connection.run_on_commit)
    try:
        yield
    finally:
        if only_test_transaction(using):
            _run_hooks(using, start)


def _run_hooks(using: str, start: int) -> None:
    connection = connections[using]
    while len(connection.run_on_commit) > start:
        hooks: list[Any] = list(connection.run_on_commit[start:])
        # Gone from the list, as after a commit: nothing runs them a second time.
        del connection.run_on_commit[start:]
        for entry in hooks:
            hook, robust = entry[1], bool(entry[2]) if len(entry) > 2 else False
            if robust:
                try:
                    hook()
                except Exception as exc:
                    logger.error("on_commit callback %r failed: %s", hook, exc, exc_info=True)
            else:
                hook()
