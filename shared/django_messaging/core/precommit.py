"""Rows written inside a transaction just before it commits.

Django runs hooks after a commit (``transaction.on_commit``), never before one. A package that
wants the rows of a whole ``transaction.atomic()`` block written together, in as few statements
as it can, and only if the block commits, registers one :class:`BeforeCommit` hook per save
with :func:`defer`. The hooks ride on Django's own list of commit hooks, which Django keeps
exact: a savepoint that rolls back drops the hooks registered inside it, a transaction that rolls
back drops them all. When the outermost block commits, the connection's ``commit()`` (wrapped
once per connection object by :func:`defer`) first hands the hooks still registered to their
class's :meth:`BeforeCommit.write`, one call per class in the order the classes first appear,
each with its hooks in the order they were registered; then it commits. If a write fails,
nothing is committed: ``atomic()`` rolls the transaction back and raises the error. After the
commit Django calls each hook, as any commit hook.

Wrapping ``commit`` of the connection object is the one place every commit of an ``atomic``
block passes through (``Atomic.__exit__`` and ``transaction.commit()`` call it).
"""

from __future__ import annotations

import sys
from typing import Any

from django.db import DatabaseError, connections

__all__ = ["BeforeCommit", "can_carry_commit", "defer", "deferring"]

#: Set on the wrapper :func:`_wrap_commit` installs: the connection object it wraps. Whether a
#: connection's ``commit`` is wrapped is read off ``commit`` itself, never remembered beside it:
#: code that swaps ``commit`` and puts the old one back (a test's monkeypatch) would otherwise
#: leave a connection marked as wrapped whose commit writes nothing.
_WRAPS = "_messaging_writes_before_commit_of"


class BeforeCommit:
    """A commit hook whose rows its class writes just before the transaction commits.

    Subclasses implement :meth:`write` (a class method: it writes the rows of several hooks at
    once) and may implement ``__call__``, which Django runs after the commit.
    """

    #: ``_written``: set once :meth:`write` ran for the hook. With autocommit off, Django keeps
    #: the hooks until autocommit is turned back on, so a second ``commit()`` must skip them.
    __slots__ = ("_written",)
    _written: bool

    def __call__(self) -> None:
        """Run after the commit; nothing by default."""

    @classmethod
    def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
        """Write the rows of ``hooks`` (instances of ``cls``, in registration order) on
        ``connection``, inside the transaction about to commit. ``final``: no statement follows
        before the commit, so a statement that :func:`can_carry_commit` may end with
        ``; COMMIT`` to save the round trip of the commit."""
        raise NotImplementedError


def deferring(using: str) -> bool:
    """True inside an application's ``transaction.atomic()`` on database ``using``: there a
    hook given to :func:`defer` is written at the commit. Not inside a test case's own blocks
    (Django's ``TestCase``), which never commit: a package writes its rows at once there."""
    connection = connections[using]
    blocks = connection.atomic_blocks
    return bool(
        connection.in_atomic_block and blocks and not getattr(blocks[0], "_from_testcase", False)
    )


def defer(hook: BeforeCommit, using: str) -> None:
    """Register ``hook`` with the current transaction of database ``using``: its rows are
    written just before the transaction commits, or never if the block around it rolls back."""
    connection = connections[using]
    if getattr(connection.commit, _WRAPS, None) is not connection:
        _wrap_commit(connection)
    connection.on_commit(hook)


def can_carry_commit(cursor: Any) -> bool:
    """True when the driver binds parameters on the client (psycopg 3's default cursor in
    Django), so one statement string may hold an ``INSERT`` and the ``COMMIT`` after it."""
    # Read from sys.modules: a psycopg cursor means psycopg is imported, and a project on
    # another database does not pay for importing it.
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(getattr(cursor, "cursor", None), psycopg.ClientCursor)


def _wrap_commit(connection: Any) -> None:
    commit = connection.commit

    def commit_writing_first() -> None:
        try:
            if not connection.in_atomic_block:  # else commit() refuses: nothing to write yet
                _write_pending(connection)
        except DatabaseError:
            raise  # atomic() rolls back; a manual commit() leaves that to its caller
        except BaseException:
            connection.rollback()
            raise
        commit()

    setattr(commit_writing_first, _WRAPS, connection)
    connection.commit = commit_writing_first


def _write_pending(connection: Any) -> None:
    by_class: dict[type[BeforeCommit], list[BeforeCommit]] = {}
    for entry in connection.run_on_commit:
        hook = entry[1]
        if isinstance(hook, BeforeCommit) and not getattr(hook, "_written", False):
            by_class.setdefault(type(hook), []).append(hook)
    last = len(by_class) - 1
    for index, (kind, hooks) in enumerate(by_class.items()):
        kind.write(connection, hooks, final=index == last)
        for hook in hooks:
            hook._written = True
