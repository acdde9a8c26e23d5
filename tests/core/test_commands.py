"""WorkerCommand: the flags, logging switch and exit codes every long-running command shares."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.test import override_settings

from django_messaging.core import commands
from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.worker import Worker


class StopAfter(Worker):
    """Writes its pid each unit; after ``units``, the first worker to get there asks ``target``
    to stop with one SIGTERM (a second one would mean "exit at once")."""

    def __init__(self, out: Path, units: int, target: int) -> None:
        self.out, self.units, self.target = out, units, target
        self.stopped = False

    def run_once(self) -> None:
        with self.out.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        self.units -= 1
        if self.units == 0:
            try:
                os.close(os.open(self.out.with_suffix(".signalled"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os.kill(self.target, signal.SIGTERM)

    def stop(self) -> None:
        with self.out.open("a") as handle:
            handle.write(f"stopped {os.getpid()}\n")


class Demo(WorkerCommand):
    help = "A demo worker command."
    worker_aliases = ("--processes",)

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out")
        parser.add_argument("--units", type=int, default=3)

    def check_options(self, **options: Any) -> None:
        if options["units"] < 1:
            raise UsageError("--units must be at least 1")

    def worker_factory(self, **options: Any) -> Any:
        out, units, parent = Path(options["out"]), options["units"], os.getpid()
        return lambda: StopAfter(out, units, parent)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_one_worker_runs_in_the_process_until_sigterm_then_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "units"
    call_command(Demo(), str(out), "--units", "3")
    assert lines(out) == [str(os.getpid())] * 3 + [f"stopped {os.getpid()}"]


@pytest.mark.parametrize("flag", ["--workers", "-w", "--processes"])
def test_several_workers_run_as_supervised_processes(tmp_path: Path, flag: str) -> None:
    out = tmp_path / "units"
    call_command(Demo(), str(out), flag, "2", "--units", "1")  # the first unit stops everyone
    pids = {line for line in lines(out) if not line.startswith("stopped")}
    stopped = {line.split()[1] for line in lines(out) if line.startswith("stopped")}
    assert str(os.getpid()) not in pids
    assert 1 <= len(pids) <= 2 and stopped == pids  # every child that ran stopped cleanly


@pytest.mark.parametrize(
    "argv,message",
    [(["--workers", "0"], "--workers must be at least 1"), (["--units", "0"], "--units")],
)
def test_a_wrong_command_line_exits_2_before_any_work(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    out = tmp_path / "units"
    with pytest.raises(CommandError, match=message) as raised:
        call_command(Demo(), str(out), *argv)
    assert raised.value.returncode == 2
    assert not out.exists()


def test_settings_that_fail_the_system_checks_exit_2_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "units"
    with (
        override_settings(MESSAGING={"NO_SUCH_SECTION": {}}),
        pytest.raises(CommandError, match=r"messaging\.E002") as raised,
    ):
        call_command(Demo(), str(out), skip_checks=False)
    assert raised.value.returncode == 2
    assert not out.exists()


class NeedsSettings(Demo):
    def worker_factory(self, **options: Any) -> Any:
        raise ConfigurationError("MESSAGING['DEMO']['X'] = 'no.where' cannot be imported")


def test_a_configuration_error_while_building_the_workers_exits_2(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"no\.where") as raised:
        call_command(NeedsSettings(), str(tmp_path / "units"))
    assert raised.value.returncode == 2


def test_a_worker_that_keeps_crashing_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The supervisor's give-up path takes restarts with back-off (tests/core/test_worker.py runs
    # it for real); here only the mapping of its result to the exit code.
    monkeypatch.setattr(commands, "run_workers", lambda factories, **kwargs: 1)
    with pytest.raises(SystemExit) as exited:
        call_command(Demo(), str(tmp_path / "units"), "-w", "2")
    assert exited.value.code == 1


def test_a_start_method_the_factories_cannot_travel_with_is_a_usage_error(
    tmp_path: Path,
) -> None:
    # Demo's factory is a closure: fine for fork, refused for spawn before anything starts.
    with pytest.raises(CommandError, match="cannot be pickled") as raised:
        call_command(Demo(), str(tmp_path / "units"), "-w", "2", "--start-method", "spawn")
    assert raised.value.returncode == 2
    assert not (tmp_path / "units").exists()


@pytest.mark.parametrize(
    "verbosity,level", [(0, logging.WARNING), (2, logging.INFO), (3, logging.DEBUG)]
)
def test_verbosity_sets_the_level_of_the_package_loggers(
    tmp_path: Path, verbosity: int, level: int
) -> None:
    logger = logging.getLogger("django_messaging")
    before = logger.level
    try:
        call_command(Demo(), str(tmp_path / "units"), "--units", "1", verbosity=verbosity)
        assert logger.level == level
    finally:
        logger.setLevel(before)


def test_help_lists_the_shared_flags() -> None:
    text = Demo().create_parser("manage.py", "demo").format_help()
    for flag in ("--workers", "-w", "--processes", "--reload", "--units"):
        assert flag in text


@pytest.mark.parametrize(
    "argv",
    [
        ["publish"],
        ["publish", "--database", "default", "--transport", "default", "--batch-size", "5"],
        ["subscribe", "tests.outbox.callbacks.store_order", "/topic/spawned"],
        ["cqrs_consume"],
        ["cqrs_pending", "run", "--interval", "0.5"],
        ["kafka_resolve_relations", "--interval", "2"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_the_shipped_worker_commands_can_start_spawned_workers(argv: list[str]) -> None:
    """``-w 2 --start-method spawn`` (or ``forkserver``) pickles each worker's factory for the
    new process, which builds its worker from it; a factory that is a closure is refused."""
    import pickle

    from django.core.management import get_commands, load_command_class

    from django_messaging.core.worker import child_arguments

    name = argv[0]
    command = load_command_class(get_commands()[name], name)
    options = vars(command.create_parser("manage.py", name).parse_args(argv[1:]))
    for shared in ("workers", "reload", "metrics_port", "metrics_addr", "start_method"):
        options.pop(shared)
    factories = command.worker_factories(2, **options)
    method, arguments = child_arguments(factories, "spawn")
    assert method == "spawn" and len(arguments) == len(factories) >= 2
    for pickled, _level in arguments:
        factory = pickle.loads(pickled)
        assert callable(factory)
