"""The health figures of every installed package, gathered in one place.

Each feature package registers one or more *sources* in its ``AppConfig.ready()``; a source is
a callable returning :class:`Figure` objects (an outbox backlog, a Kafka consumer group's lag on
one partition, ...). ``manage.py messaging_status`` prints them and compares them with limits,
and the Prometheus gauges of :mod:`django_messaging.core.metrics` are read from the same sources
at scrape time. Core knows no package: it only calls what was registered.

    from django_messaging.core import status

    def outbox_figures(timeout: float) -> list[status.Figure]:
        ...
    status.register("outbox", "database", outbox_figures)

A source that cannot reach its service raises :class:`Unreachable` (a database that is away is
recognised by itself); the figures of the other sources are still reported.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError

from django_messaging.core.exceptions import MessagingError
from django_messaging.core.reconnect import database_outage

__all__ = [
    "Figure",
    "Kind",
    "Problem",
    "Report",
    "Source",
    "Unreachable",
    "collect",
    "register",
    "sources",
    "unregister",
]

logger = logging.getLogger(__name__)


class Kind(enum.StrEnum):
    """What a figure measures, and so which limit of ``messaging_status`` applies to it."""

    #: messages stored and not sent yet (``--max-backlog``)
    BACKLOG = "backlog"
    #: seconds the oldest unsent message has waited (``--max-age``)
    AGE = "age"
    #: messages or events a consumer has still to handle (``--max-lag``)
    LAG = "lag"
    #: messages given up: dead letters, failed rows (``--max-dead-letters``)
    DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True)
class Figure:
    """One measured value. ``metric`` names the Prometheus gauge (``messaging_<metric>``) and the
    row of the status table; ``labels`` say what it is about (a destination, a group, topic and
    partition); every figure of one metric has the same label names."""

    package: str
    metric: str
    #: ``None``: shown for information, never compared with a limit.
    kind: Kind | None
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    help: str = ""

    @property
    def subject(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.labels)


class Unreachable(MessagingError):
    """A source could not reach its broker or database; the message says which and where."""


#: ``source(timeout)``: the figures, waiting at most ``timeout`` seconds for a broker.
Source = Callable[[float], Iterable[Figure]]


@dataclass(frozen=True)
class _Registered:
    package: str
    service: str
    source: Source


_SOURCES: dict[tuple[str, str], _Registered] = {}


def register(package: str, service: str, source: Source) -> None:
    """Report ``source``'s figures under ``package``; ``service`` names what it talks to
    (``"database"``, ``"kafka"``, ``"rabbitmq"``), for the message when it is unreachable.
    Registering the same (package, service) again replaces the source."""
    _SOURCES[(package, service)] = _Registered(package, service, source)


def unregister(package: str, service: str) -> None:
    _SOURCES.pop((package, service), None)


def sources() -> list[tuple[str, str]]:
    """(package, service) of every registered source, in registration order."""
    return list(_SOURCES)


@dataclass(frozen=True)
class Problem:
    """A source that gave no figures: its service was unreachable, or it failed."""

    package: str
    service: str
    message: str
    unreachable: bool


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def unreachable(self) -> list[Problem]:
        return [p for p in self.problems if p.unreachable]


def collect(timeout: float = 5.0, packages: Iterable[str] | None = None) -> Report:
    """Call every registered source (of ``packages`` only, when given)."""
    wanted = None if packages is None else set(packages)
    report = Report()
    for registered in list(_SOURCES.values()):
        if wanted is not None and registered.package not in wanted:
            continue
        try:
            report.figures.extend(registered.source(timeout))
        except Unreachable as exc:
            report.problems.append(_problem(registered, str(exc), True))
        except DatabaseError as exc:
            outage = database_outage(exc)
            text = f"database unreachable: {exc}" if outage else f"database error: {exc}"
            report.problems.append(_problem(registered, text.strip(), outage))
        except Exception as exc:
            logger.exception("status source %s/%s failed", registered.package, registered.service)
            report.problems.append(_problem(registered, f"{type(exc).__name__}: {exc}", False))
    return report


def _problem(registered: _Registered, message: str, unreachable: bool) -> Problem:
    # One line: drivers' messages often span several (PostgreSQL's "Is the server running").
    return Problem(registered.package, registered.service, " ".join(message.split()), unreachable)
