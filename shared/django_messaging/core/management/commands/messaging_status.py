"""``manage.py messaging_status``: one table of every installed package's health, with limits
that make it a liveness or readiness probe."""

from __future__ import annotations

import json
from argparse import RawDescriptionHelpFormatter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_messaging.core import status
from django_messaging.core.status import Figure, Kind, Report

#: Exit codes (documented in ``--help``).
OK, EXCEEDED, USAGE, UNREACHABLE, FAILED = 0, 1, 2, 3, 4

#: ``--max-…`` option → the kind of figure it limits.
LIMITS = {
    "max_backlog": Kind.BACKLOG,
    "max_age": Kind.AGE,
    "max_lag": Kind.LAG,
    "max_dead_letters": Kind.DEAD_LETTERS,
}


class Command(BaseCommand):
    help = (
        "Print the health of every installed messaging package in one table: outbox backlog, "
        "age of the oldest unsent message and failed rows; CQRS pending messages, replica queue "
        "depth and dead letters; Kafka consumer-group lag per topic and partition; event-store "
        "follower positions against the head of their leaders.\n\n"
        "Limits turn it into a probe: a figure above its limit makes the command exit 1.\n\n"
        "Exit codes:\n"
        "  0  every figure is within its limit\n"
        "  1  a figure is above its limit (the table marks it)\n"
        "  2  wrong command line\n"
        "  3  a broker or database could not be reached (the other figures are still shown)\n"
        "  4  a package could not report its figures for another reason (see the message)\n"
        "An unreachable service (3) wins over a failure (4), which wins over a limit (1).\n\n"
        "Examples:\n"
        "  manage.py messaging_status\n"
        "  manage.py messaging_status --json\n"
        "  manage.py messaging_status --max-backlog 1000 --max-age 60 --max-lag 5000\n"
        "  manage.py messaging_status --package kafka --max-lag 0 --timeout 2"
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument(
            "--package",
            action="append",
            metavar="NAME",
            help="only this package (kafka, outbox, cqrs, eventstore); may be repeated",
        )
        parser.add_argument(
            "--max-backlog",
            type=_non_negative,
            metavar="N",
            help="most unsent messages allowed (outbox backlog, CQRS pending messages)",
        )
        parser.add_argument(
            "--max-age",
            type=_non_negative,
            metavar="SECONDS",
            help="oldest unsent message allowed, in seconds (outbox, CQRS pending)",
        )
        parser.add_argument(
            "--max-lag",
            type=_non_negative,
            metavar="N",
            help="most messages or events a consumer may be behind (Kafka lag per partition, "
            "CQRS replica queue depth, event-store follower lag)",
        )
        parser.add_argument(
            "--max-dead-letters",
            type=_non_negative,
            metavar="N",
            help="most dead letters allowed (outbox failed rows, CQRS dead letter queue)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="how long to wait for each broker before calling it unreachable (default 5)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        known = sorted({package for package, _ in status.sources()})
        packages = options["package"]
        if packages:
            unknown = sorted(set(packages) - set(known))
            if unknown:
                raise CommandError(
                    f"no figures for {', '.join(unknown)}: the packages reporting here are "
                    f"{', '.join(known) or 'none'} (is the package in INSTALLED_APPS?)",
                    returncode=USAGE,
                )
        limits = {kind: options[name] for name, kind in LIMITS.items() if options[name] is not None}
        report = status.collect(options["timeout"], packages)
        exceeded = [f for f in report.figures if _over(f, limits)]
        if report.unreachable:
            code = UNREACHABLE
        elif report.problems:
            code = FAILED
        elif exceeded:
            code = EXCEEDED
        else:
            code = OK
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(report, limits, code), indent=2))
        else:
            self.stdout.write(_table(report, limits))
        if code == OK:
            return
        if code == EXCEEDED:
            message = "; ".join(
                f"{f.package} {f.metric}{_in(f)} = {_number(f.value)} > {_number(_limit(f, limits) or 0.0)}"
                for f in exceeded
            )
        else:
            message = "; ".join(f"{p.package}: {p.message}" for p in report.problems)
        raise CommandError(message, returncode=code)


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


def _limit(figure: Figure, limits: dict[Kind, float]) -> float | None:
    return limits.get(figure.kind) if figure.kind is not None else None


def _over(figure: Figure, limits: dict[Kind, float]) -> bool:
    limit = _limit(figure, limits)
    return limit is not None and figure.value > limit


def _in(figure: Figure) -> str:
    return f" ({figure.subject})" if figure.labels else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _as_json(report: Report, limits: dict[Kind, float], code: int) -> dict[str, Any]:
    return {
        "exit_code": code,
        "figures": [
            {
                "package": f.package,
                "metric": f.metric,
                "kind": f.kind.value if f.kind is not None else None,
                "labels": dict(f.labels),
                "value": f.value,
                "limit": _limit(f, limits),
                "exceeded": _over(f, limits),
            }
            for f in report.figures
        ],
        "problems": [
            {
                "package": p.package,
                "service": p.service,
                "unreachable": p.unreachable,
                "message": p.message,
            }
            for p in report.problems
        ],
    }


def _table(report: Report, limits: dict[Kind, float]) -> str:
    rows = [("PACKAGE", "FIGURE", "OF", "VALUE", "LIMIT")]
    for f in report.figures:
        limit = _limit(f, limits)
        mark = "" if limit is None else _number(limit) + ("  EXCEEDED" if _over(f, limits) else "")
        rows.append((f.package, f.metric, f.subject or "-", _number(f.value), mark or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])), row[4]]).rstrip()
        for row in rows
    ]
    for p in report.problems:
        what = "UNREACHABLE" if p.unreachable else "FAILED"
        lines.append(f"{p.package} ({p.service}): {what}: {p.message}")
    if not report.figures and not report.problems:
        lines.append("(no messaging package reports figures)")
    return "\n".join(lines)
