"""``./manage.py kafka_connect``: validate, publish and check the connectors of this project."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_messaging.core.reconnect import Backoff
from django_messaging.kafka import kafka
from django_messaging.kafka.conf import settings
from django_messaging.kafka.connect.connector import Connector, ConnectorState, ConnectorStatus
from django_messaging.kafka.exceptions import DjangoKafkaError

logger = logging.getLogger(__name__)

HELP = """\
Manage the Kafka Connect connectors registered with @kafka.connectors().

Steps run in this order, each for every selected connector: --validate, --publish,
--check-status. A connector that fails a step is left out of the following steps. The command
exits with status 1 when any connector failed, unless --ignore-failures is given.

examples:
  list the registered connectors:
    ./manage.py kafka_connect --list
  deploy every connector and wait until each one runs:
    ./manage.py kafka_connect --validate --publish --check-status
  one connector, by its name in Connect or its Python path, never failing the deploy:
    ./manage.py kafka_connect myapp.connectors.OrdersSource --publish --ignore-failures

Connectors with mark_for_removal = True are deleted by --publish (and --check-status then
confirms they are gone). The CONNECT_* keys of MESSAGING["KAFKA"] say where Connect is.
"""


@dataclass
class Outcome:
    connector: Connector
    failed_step: str = ""
    detail: str = ""
    steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_step


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "connector",
            nargs="?",
            help="One connector: its name in Connect ([prefix.]ClassName) or its Python path. "
            "Default: every registered connector.",
        )
        parser.add_argument(
            "--list", action="store_true", help="List the registered connectors and exit."
        )
        parser.add_argument(
            "--validate",
            action="store_true",
            help="Validate each config with Connect (PUT /connector-plugins/<class>/config/validate).",
        )
        parser.add_argument(
            "--publish",
            action="store_true",
            help="Create or update each connector; delete those marked for removal.",
        )
        parser.add_argument(
            "--check-status",
            action="store_true",
            help="Wait until each connector and all its tasks are RUNNING (see --status-timeout).",
        )
        parser.add_argument(
            "--ignore-failures",
            action="store_true",
            help="Report failed connectors but exit with status 0.",
        )
        parser.add_argument(
            "--status-timeout",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="How long --check-status waits for connectors still starting (default: 30).",
        )

    # --- entry point ----------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = int(options.get("verbosity", 1))
        key = options.get("connector")
        if options["list"]:
            self.list_connectors(key)
            return
        steps = [s for s in ("validate", "publish", "check_status") if options[s]]
        if not steps:
            if key:
                raise CommandError(
                    f"Nothing to do for {key!r}: choose --validate, --publish and/or "
                    "--check-status (see --help).",
                    returncode=2,
                )
            self.stdout.write(self.create_parser("manage.py", "kafka_connect").format_help())
            return
        classes = [find_connector(key)] if key else [kafka.connectors[k] for k in kafka.connectors]
        if not classes:
            self.stdout.write("No connectors are registered (see @kafka.connectors()).")
            return
        if not settings.CONNECT_HOST:
            raise CommandError(
                "MESSAGING['KAFKA']['CONNECT_HOST'] is not set: set it to the URL of the "
                "Kafka Connect REST API, e.g. 'http://connect:8083'."
            )
        outcomes = [Outcome(cls()) for cls in classes]
        if "validate" in steps:
            self.step("validate", outcomes, self.validate_one)
        if "publish" in steps:
            self.step("publish", outcomes, self.publish_one)
        if "check_status" in steps:
            self.check_status(outcomes, float(options["status_timeout"]))
        self.finish(outcomes, ignore_failures=options["ignore_failures"])

    # --- steps ----------------------------------------------------------------------------------

    def step(self, name: str, outcomes: list[Outcome], action: Any) -> None:
        pending = [o for o in outcomes if o.ok]
        for index, outcome in enumerate(pending, start=1):
            label = f"[{name} {index}/{len(pending)}] {outcome.connector.name}"
            try:
                message = action(outcome)
            except DjangoKafkaError as exc:
                self.fail(outcome, name, str(exc), label)
            except Exception as exc:  # a broken connector class must not stop the others
                logger.exception("kafka_connect: %s of %s failed", name, outcome.connector.name)
                self.fail(outcome, name, f"{type(exc).__name__}: {exc}", label)
            else:
                outcome.steps.append(name)
                self.say(f"{label}: {message}", self.style.SUCCESS)

    def validate_one(self, outcome: Outcome) -> str:
        connector = outcome.connector
        if connector.mark_for_removal:
            return "skipped (marked for removal)"
        result = connector.validate()
        if not result.valid:
            raise DjangoKafkaError(f"invalid config: {result.describe()}")
        return "valid"

    def publish_one(self, outcome: Outcome) -> str:
        connector = outcome.connector
        if connector.mark_for_removal:
            if connector.delete():
                return "deleted (marked for removal)"
            return "already absent (marked for removal)"
        return "created" if connector.create_or_update() else "updated"

    def check_status(self, outcomes: list[Outcome], timeout: float) -> None:
        pending = [o for o in outcomes if o.ok]
        total = len(pending)
        deadline = time.monotonic() + max(timeout, 0.0)
        backoff = Backoff(initial=0.25, cap=5.0)
        looks = 0
        done = 0
        last: dict[int, tuple[str, str]] = {}
        while pending:
            still: list[Outcome] = []
            for outcome in pending:
                label = f"[check-status {done + 1}/{total}] {outcome.connector.name}"
                try:
                    verdict, text = self.status_once(outcome)
                except DjangoKafkaError as exc:
                    verdict, text = "failed", str(exc)
                except Exception as exc:  # a broken connector class must not stop the others
                    logger.exception("kafka_connect: status of %s failed", outcome.connector.name)
                    verdict, text = "failed", f"{type(exc).__name__}: {exc}"
                if verdict in ("wait", "wait-ok"):
                    if last.get(id(outcome), ("", ""))[1] != text:
                        left = max(deadline - time.monotonic(), 0.0)
                        self.say(f"  {outcome.connector.name}: {text}, waiting (up to {left:.0f}s)")
                    last[id(outcome)] = (verdict, text)
                    still.append(outcome)
                    continue
                done += 1
                if verdict == "ok":
                    outcome.steps.append("check-status")
                    self.say(f"{label}: {text}", self.style.SUCCESS)
                else:
                    self.fail(outcome, "check-status", text, label)
            pending = still
            if not pending:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for outcome in pending:
                    done += 1
                    label = f"[check-status {done}/{total}] {outcome.connector.name}"
                    verdict, text = last[id(outcome)]
                    if verdict == "wait-ok":
                        outcome.steps.append("check-status")
                        self.say(f"{label}: {text}", self.style.SUCCESS)
                        continue
                    self.fail(
                        outcome,
                        "check-status",
                        f"still {text} after {timeout:g}s (--status-timeout)",
                        label,
                    )
                break
            looks += 1
            time.sleep(min(backoff.delay(looks), remaining))

    def status_once(self, outcome: Outcome) -> tuple[str, str]:
        """One look at the connector: ``("ok"|"failed"|"wait", description)``."""
        connector = outcome.connector
        state: ConnectorState | None = connector.state()
        if connector.mark_for_removal:
            if state is None:
                return "ok", "absent (marked for removal)"
            return "failed", (
                f"still present ({state.state}) although marked for removal; run --publish"
            )
        if state is None:
            return "wait", "not found"
        if state.healthy and state.tasks:
            return "ok", state.describe()
        if state.state == ConnectorStatus.FAILED or state.failed_tasks:
            return "failed", state.describe()
        if state.healthy:  # RUNNING without tasks (yet): fine if it stays so until the deadline
            return "wait-ok", state.describe()
        if state.settling:
            return "wait", state.describe()
        return "failed", state.describe()

    # --- output ---------------------------------------------------------------------------------

    def fail(self, outcome: Outcome, step: str, detail: str, label: str) -> None:
        outcome.failed_step = step
        outcome.detail = detail
        self.stderr.write(f"{label}: FAILED: {detail}", self.style.ERROR)

    def say(self, text: str, style: Any = None) -> None:
        if self.verbosity >= 1:
            self.stdout.write(text, style)

    def finish(self, outcomes: list[Outcome], ignore_failures: bool) -> None:
        failed = [o for o in outcomes if not o.ok]
        if not failed:
            self.say(f"{len(outcomes)} connector(s): all succeeded.", self.style.SUCCESS)
            return
        summary = ", ".join(f"{o.connector.name} ({o.failed_step})" for o in failed)
        message = f"{len(failed)} of {len(outcomes)} connector(s) failed: {summary}"
        if ignore_failures:
            self.stderr.write(f"{message} (ignored: --ignore-failures)", self.style.WARNING)
            return
        raise CommandError(message)

    def list_connectors(self, key: str | None) -> None:
        classes = [find_connector(key)] if key else [kafka.connectors[k] for k in kafka.connectors]
        if not classes:
            self.stdout.write("No connectors are registered (see @kafka.connectors()).")
            return
        for cls in classes:
            note = " (marked for removal)" if cls.mark_for_removal else ""
            self.stdout.write(f"{cls.name}{note}  [{cls.dotted_path()}]")


def find_connector(key: str) -> type[Connector]:
    """A registered connector by registry key, current name in Connect, or Python path."""
    if key in kafka.connectors:
        return kafka.connectors[key]  # type: ignore[no-any-return]
    registered = [kafka.connectors[k] for k in kafka.connectors]
    for cls in registered:
        if key in (cls.name, cls.dotted_path(), f"{cls.__module__}.{cls.__name__}"):
            return cls  # type: ignore[no-any-return]
    known = ", ".join(f"{cls.name} [{cls.dotted_path()}]" for cls in registered) or "none"
    raise CommandError(f"No registered connector {key!r}. Registered: {known}.")
