"""``manage.py sync_followers`` with real runners, followers and databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings
from eventsourcing.persistence import StoredEvent
from eventsourcing.system import (
    MultiThreadedRunner,
    NewMultiThreadedRunner,
    NewSingleThreadedRunner,
    Runner,
    SingleThreadedRunner,
)

from django_messaging.eventstore.recorders import DjangoApplicationRecorder
from tests.eventstore.base import EventStoreTestCase
from tests.helpers import wait_until
from tests.project.eventstore_app import domain
from tests.project.eventstore_app.domain import Registrar, TrainingSchool, TrickCounter
from tests.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PERSISTENCE_MODULE": "django_messaging.eventstore"}
APP_LABEL = "test_eventstore"


def sync(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command("sync_followers", *args, stdout=out, **options)
    return out.getvalue()


class RunnerCase(EventStoreTestCase):
    runner_class: type[Runner[Any]] = SingleThreadedRunner
    env: ClassVar[dict[str, str]] = ENV

    def setUp(self) -> None:
        super().setUp()
        self.runner = self.runner_class(domain.training_system(), env=self.env)
        self.config = apps.get_app_config(APP_LABEL)
        self.config.runner = self.runner  # type: ignore[attr-defined]
        self.school: TrainingSchool = self.runner.apps["TrainingSchool"]  # type: ignore[attr-defined]
        self.counter: TrickCounter = self.runner.apps["TrickCounter"]  # type: ignore[attr-defined]
        self.registrar: Registrar = self.runner.apps["Registrar"]  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        del self.config.runner  # type: ignore[attr-defined]
        Registrar.hook = None
        super().tearDown()

    def teach(self, name: str, *tricks: str) -> None:
        self.school.register(name)
        for trick in tricks:
            self.school.add_trick(name, trick)


class TestSyncAllFollowers(RunnerCase):
    def test_all_followers_catch_up_and_a_second_run_finds_nothing(self) -> None:
        self.teach("Fido", "roll over", "play dead")
        self.teach("Rex", "sit")
        output = sync(verbosity=2)
        assert "All followers (2)" in output
        assert "[1/2] Synchronizing TrickCounter... OK" in output
        assert "[2/2] Synchronizing Registrar... OK" in output
        assert "5 events from TrainingSchool processed" in output
        assert self.counter.get_count("Fido") == 2
        assert self.counter.get_count("Rex") == 1
        assert self.registrar.get_registrations() == 2
        assert self.counter.recorder.max_tracking_id("TrainingSchool") == 5

        self.school.add_trick("Rex", "fetch")
        again = sync(verbosity=2)
        assert again.count("1 events from TrainingSchool processed") == 2
        assert self.counter.get_count("Rex") == 2

    def test_one_selected_follower(self) -> None:
        self.teach("Fido", "roll over")
        output = sync("Registrar", verbosity=1)
        assert "1 follower(s) selected" in output
        assert "TrickCounter" not in output
        assert self.registrar.get_registrations() == 1
        assert self.counter.recorder.max_tracking_id("TrainingSchool") is None

    def test_unknown_follower_is_an_error_listing_the_known_ones(self) -> None:
        with pytest.raises(
            CommandError, match=r"Unknown follower.*Nobody.*TrickCounter, Registrar"
        ):
            sync("Nobody")

    def test_dry_run_processes_and_rolls_back(self) -> None:
        """eventsourcing-django: a dry run consumed PostgreSQL identity values, leaving
        permanent gaps in the notification ids; here ids stay contiguous."""
        self.teach("Fido", "roll over", "play dead")
        output = sync(dry_run=True, verbosity=2)
        assert "Dry run" in output
        assert output.count("OK (dry-run)") == 2
        assert "3 events from TrainingSchool processed" in output
        assert self.counter.recorder.max_tracking_id("TrainingSchool") is None
        assert self.counter.recorder.max_notification_id() is None
        sync()
        ids = [n.id for n in self.counter.recorder.select_notifications(start=None, limit=10)]
        assert ids == [1, 2, 3]  # Tally started, counted twice: from 1, no gap

    def test_a_failing_follower_does_not_stop_the_others(self) -> None:
        self.teach("Fido", "roll over", "explode", "sit")
        out = StringIO()
        with pytest.raises(CommandError, match=r"1 of 2 follower.*TrickCounter"):
            call_command("sync_followers", stdout=out, verbosity=2)
        output = out.getvalue()
        assert "Synchronizing TrickCounter... FAILED" in output
        assert "RuntimeError: TrickCounter cannot count an exploding trick" in output
        assert "Synchronizing Registrar... OK" in output
        # The failed follower's transaction rolled back whole: not even "roll over" counts.
        assert self.counter.recorder.max_tracking_id("TrainingSchool") is None
        assert self.counter.get_count("Fido") == 0
        assert self.registrar.get_registrations() == 1

    def test_verbosity_1_failure_hints_at_verbosity_2(self) -> None:
        self.teach("Fido", "explode")
        out = StringIO()
        with pytest.raises(CommandError):
            call_command("sync_followers", "TrickCounter", stdout=out, verbosity=1)
        assert "--verbosity 2" in out.getvalue()
        assert "RuntimeError" not in out.getvalue()

    def test_each_follower_commits_before_the_next_starts(self) -> None:
        """eventsourcing-django ran all followers of a database in one transaction, holding
        its write lock across followers. Here the first follower's work is committed (seen
        from another connection) while the second one runs."""
        self.teach("Fido", "roll over")
        seen: list[int | None] = []

        def look(_: Any) -> None:
            def other_connection() -> None:
                try:
                    seen.append(self.counter.recorder.max_tracking_id("TrainingSchool"))
                finally:
                    connections["default"].close()

            thread = threading.Thread(target=other_connection)
            thread.start()
            thread.join(timeout=10)

        Registrar.hook = look
        sync("TrickCounter", "Registrar")
        assert seen == [2]

    def test_other_applications_can_write_while_a_follower_syncs(self) -> None:
        """No lock wider than the follower being synchronised: while Registrar's
        transaction is open, another connection appends to TrickCounter's log at once."""
        if connections["default"].vendor == "sqlite":
            pytest.skip("SQLite allows one writer per database file: any open write blocks others")
        self.teach("Fido")
        finished = threading.Event()

        def write_elsewhere(_: Any) -> None:
            def other_connection() -> None:
                try:
                    DjangoApplicationRecorder("TrickCounter").insert_events(
                        [StoredEvent(domain.Dog.create_id("x"), 1, "t", b"{}")]
                    )
                    finished.set()
                finally:
                    connections["default"].close()

            thread = threading.Thread(target=other_connection)
            thread.start()
            thread.join(timeout=10)

        Registrar.hook = write_elsewhere
        sync("Registrar")
        assert finished.is_set()


class TestNewSingleThreadedRunner(RunnerCase):
    runner_class = NewSingleThreadedRunner

    def test_sync(self) -> None:
        self.teach("Fido", "sit")
        sync()
        assert self.counter.get_count("Fido") == 1
        assert self.registrar.get_registrations() == 1


class TestMultiThreadedRunner(RunnerCase):
    runner_class = MultiThreadedRunner

    def test_sync(self) -> None:
        self.teach("Fido", "sit", "beg")
        sync()
        assert self.counter.get_count("Fido") == 2


class TestNewMultiThreadedRunner(RunnerCase):
    runner_class = NewMultiThreadedRunner

    def test_sync(self) -> None:
        self.teach("Fido", "sit")
        sync()
        assert self.counter.get_count("Fido") == 1


class TestFollowersStoredElsewhere(RunnerCase):
    """eventsourcing-django grouped followers by ``recorder.using`` and crashed with an
    AttributeError on a follower whose recorder was not a Django one."""

    env: ClassVar[dict[str, str]] = {"PERSISTENCE_MODULE": "eventsourcing.popo"}

    def test_synchronised_without_a_django_transaction(self) -> None:
        self.teach("Fido", "sit", "beg")
        sync()
        assert self.counter.get_count("Fido") == 2

    def test_dry_run_is_refused_per_follower(self) -> None:
        self.teach("Fido", "sit")
        out = StringIO()
        with pytest.raises(CommandError, match="2 of 2"):
            call_command("sync_followers", "--dry-run", stdout=out, verbosity=2)
        assert "could not roll its changes back" in out.getvalue()
        assert self.counter.get_count("Fido") == 0


class TestStartedRunner(RunnerCase):
    def test_a_started_runner_is_synchronised_too(self) -> None:
        self.runner.start()
        try:
            self.teach("Fido", "sit")  # processed at once by the started runner
            assert self.counter.get_count("Fido") == 1
            output = sync(verbosity=2)
            assert output.count("0 events from TrainingSchool processed") == 2
        finally:
            self.runner.stop()


class TestRunnerLookup(EventStoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.config = apps.get_app_config(APP_LABEL)

    def tearDown(self) -> None:
        for name in ("runner", "second_runner", "spare"):
            if name in vars(self.config):
                delattr(self.config, name)
        domain._runner = None
        super().tearDown()

    def runner(self) -> SingleThreadedRunner[Any]:
        return SingleThreadedRunner(domain.training_system(), env=ENV)

    def test_no_runner_anywhere(self) -> None:
        with pytest.raises(CommandError, match="No eventsourcing runner found"):
            sync()

    def test_two_runners_on_app_configs_are_ambiguous(self) -> None:
        self.config.runner = self.runner()  # type: ignore[attr-defined]
        self.config.second_runner = self.runner()  # type: ignore[attr-defined]
        with pytest.raises(CommandError, match=r"Found 2 eventsourcing runners.*second_runner"):
            sync()

    def test_the_same_runner_under_two_names_counts_once(self) -> None:
        self.config.runner = self.config.spare = self.runner()  # type: ignore[attr-defined]
        assert "All followers (2)" in sync()

    def test_setting_names_an_app_label_attribute(self) -> None:
        self.config.runner = self.runner()  # type: ignore[attr-defined]
        self.config.second_runner = self.runner()  # type: ignore[attr-defined]
        with override_settings(MESSAGING={"EVENTSTORE": {"RUNNER": f"{APP_LABEL}.second_runner"}}):
            assert "All followers (2)" in sync()

    def test_setting_names_an_app_name_attribute(self) -> None:
        """eventsourcing-django only accepted the app *label* before the attribute."""
        self.config.runner = self.runner()  # type: ignore[attr-defined]
        with override_settings(
            MESSAGING={"EVENTSTORE": {"RUNNER": "tests.project.eventstore_app.runner"}}
        ):
            assert "All followers (2)" in sync()

    def test_setting_names_a_function(self) -> None:
        with override_settings(
            MESSAGING={"EVENTSTORE": {"RUNNER": "tests.project.eventstore_app.domain.get_runner"}}
        ):
            assert "All followers (2)" in sync()

    def test_documented_eventsourcing_runner_setting(self) -> None:
        with override_settings(
            MESSAGING={"EVENTSTORE": {}},
            EVENTSOURCING_RUNNER="tests.project.eventstore_app.domain.get_runner",
        ):
            assert "All followers (2)" in sync()

    def test_missing_attribute_and_wrong_type_are_clear_errors(self) -> None:
        with (
            override_settings(MESSAGING={"EVENTSTORE": {"RUNNER": f"{APP_LABEL}.nothing"}}),
            pytest.raises(CommandError, match="has no attribute 'nothing'"),
        ):
            sync()
        with (
            override_settings(MESSAGING={"EVENTSTORE": {"RUNNER": "os.path.join"}}),
            pytest.raises(CommandError),
        ):
            sync()
        with (
            override_settings(MESSAGING={"EVENTSTORE": {"RUNNER": "no.such.module.get"}}),
            pytest.raises(CommandError, match="nor importable"),
        ):
            sync()


# -- in a real process -------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    settings_dict = connections["default"].settings_dict
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MESSAGING_EVENTSTORE_RUNNER": "tests.project.eventstore_app.domain.get_runner",
    }
    if connections["default"].vendor == "sqlite":
        env["MESSAGING_SQLITE_PATH"] = str(settings_dict["NAME"])
    else:
        env["MESSAGING_TEST_DB_NAME"] = str(settings_dict["NAME"])
    return env


def manage(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # Checks of the other packages' settings are theirs to test; this is about the command.
        [
            sys.executable,
            "-m",
            "django",
            *args,
            "--settings",
            "tests.project.settings",
        ],
        cwd=ROOT,
        env=env or subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def progress_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / "progress"


class TestInARealProcess(EventStoreTestCase):
    @pytest.fixture(autouse=True)
    def _progress(self, progress_file: Path) -> None:
        self.progress_file = progress_file

    def tearDown(self) -> None:
        domain._runner = None
        super().tearDown()

    def test_help_explains_with_examples(self) -> None:
        process = manage("sync_followers", "--help")
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert "--dry-run" in output
        assert "manage.py sync_followers TrickCounter -v 2" in output

    def test_killed_mid_sync_loses_nothing_and_counts_nothing_twice(self) -> None:
        school = TrainingSchool(env=ENV)
        school.register("Fido")
        for number in range(30):
            school.add_trick("Fido", f"trick {number}")
        env = {**subprocess_env(), "TRICK_COUNTER_PROGRESS_FILE": str(self.progress_file)}
        process = manage("sync_followers", "TrickCounter", env=env)
        try:
            wait_until(
                lambda: self.progress_file.exists() and len(self.progress_file.read_text()) >= 5,
                timeout=60,
                what="the follower to be half-way",
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        counter = TrickCounter(env=ENV)
        assert counter.recorder.max_tracking_id("TrainingSchool") is None
        assert counter.get_count("Fido") == 0

        rerun = manage("sync_followers", "TrickCounter", "-v", "2")
        output, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, output
        assert "31 events from TrainingSchool processed" in output
        assert counter.get_count("Fido") == 30
        assert counter.recorder.max_tracking_id("TrainingSchool") == 31

    def test_failure_exits_non_zero(self) -> None:
        school = TrainingSchool(env=ENV)
        school.register("Fido")
        school.add_trick("Fido", "explode")
        process = manage("sync_followers", "-v", "2")
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 1, output
        assert "Synchronizing TrickCounter... " in output
        assert "FAILED" in output
        assert "follower TrickCounter failed" in output  # the logged traceback
        assert "Synchronizing Registrar... OK" in output


class TestGracefulStop(EventStoreTestCase):
    @pytest.fixture(autouse=True)
    def _progress(self, progress_file: Path) -> None:
        self.progress_file = progress_file

    def tearDown(self) -> None:
        domain._runner = None
        super().tearDown()

    def test_sigterm_finishes_the_current_follower_then_stops(self) -> None:
        school = TrainingSchool(env=ENV)
        school.register("Fido")
        for number in range(20):
            school.add_trick("Fido", f"trick {number}")
        env = {**subprocess_env(), "TRICK_COUNTER_PROGRESS_FILE": str(self.progress_file)}
        process = manage("sync_followers", "TrickCounter", "Registrar", env=env)
        try:
            wait_until(
                lambda: self.progress_file.exists() and len(self.progress_file.read_text()) >= 3,
                timeout=60,
                what="the first follower to be under way",
            )
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 1, output
        assert "stopped by SIGTERM; not synchronised: Registrar" in output
        counter = TrickCounter(env=ENV)
        assert counter.get_count("Fido") == 20  # the follower in progress finished and committed
        assert Registrar(env=ENV).get_registrations() == 0


class TestDatabaseOutage(EventStoreTestCase):
    @pytest.fixture(autouse=True)
    def _progress(self, progress_file: Path) -> None:
        self.progress_file = progress_file

    def tearDown(self) -> None:
        domain._runner = None
        super().tearDown()

    def test_an_outage_mid_sync_is_waited_out_and_what_was_written_meanwhile_is_processed(
        self,
    ) -> None:
        """The database goes away for a few seconds while the command works through a
        follower: the command logs it once, waits, and after the restore synchronises the
        follower again from its last commit, events written during the outage included."""
        if connections["default"].vendor != "postgresql":
            pytest.skip("the command's process reaches PostgreSQL through MESSAGING_POSTGRES_URL")
        school = TrainingSchool(env=ENV)
        school.register("Fido")
        for number in range(30):
            school.add_trick("Fido", f"trick {number}")
        settings_dict = connections["default"].settings_dict
        proxy = TcpProxy((settings_dict["HOST"], int(settings_dict["PORT"]))).start()
        env = {
            **subprocess_env(),
            "TRICK_COUNTER_PROGRESS_FILE": str(self.progress_file),
            "MESSAGING_POSTGRES_URL": f"postgres://{settings_dict['USER']}@127.0.0.1:{proxy.port}/",
            # Cached aggregates must not keep what the outage rolled back.
            "AGGREGATE_CACHE_MAXSIZE": "100",
        }
        process = manage("sync_followers", "TrickCounter", "-v", "2", env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
        reader.start()
        try:
            wait_until(
                lambda: self.progress_file.exists() and len(self.progress_file.read_text()) >= 5,
                timeout=60,
                what="the follower to be under way",
            )
            proxy.cut()
            for number in range(30, 40):
                school.add_trick("Fido", f"trick {number}")
            wait_until(
                lambda: (
                    process.poll() is not None
                    or any("database unreachable" in line for line in lines)
                ),
                timeout=60,
                what="the outage to be logged",
            )
            assert process.poll() is None, "the command ended during the outage"
            proxy.restore()
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
            proxy.stop()
        reader.join(timeout=10)
        output = "".join(lines)
        assert process.returncode == 0, output
        assert sum("database unreachable" in line for line in lines) == 1, output
        assert "41 events from TrainingSchool processed" in output
        counter = TrickCounter(env=ENV)
        assert counter.get_count("Fido") == 40
        assert counter.recorder.max_tracking_id("TrainingSchool") == 41
