"""The documented ways of using the module, as the README shows them."""

from __future__ import annotations

from typing import ClassVar

import pytest
from django.apps import apps
from django.db import connections
from django.test import override_settings
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import InfrastructureFactory

from django_messaging.core.checks import check_messaging_settings
from django_messaging.eventstore.conf import application_env
from django_messaging.eventstore.factory import Factory
from django_messaging.eventstore.models import AggregateRecord, StoredEventRecord
from tests.eventstore.base import EventStoreTestCase
from tests.project.eventstore_app.domain import Dog, TrainingSchool

MODULE = "django_messaging.eventstore"


class TestTrainingSchool(EventStoreTestCase):
    def test_the_seed_example_with_the_new_module_name(self) -> None:
        training_school = TrainingSchool(env={"PERSISTENCE_MODULE": MODULE})
        training_school.register("Fido")
        training_school.add_trick("Fido", "roll over")
        training_school.add_trick("Fido", "play dead")
        assert training_school.get_tricks("Fido") == ["roll over", "play dead"]
        rows = StoredEventRecord.objects.filter(application_name="TrainingSchool")
        assert [r.notification_id for r in rows.order_by("notification_id")] == [1, 2, 3]
        assert {r.originator_id for r in rows} == {str(Dog.create_id("Fido"))}

    def test_application_held_by_an_app_config(self) -> None:
        training_school = apps.get_app_config("test_eventstore").training_school
        assert isinstance(training_school.factory, Factory)
        training_school.register("Rex")
        training_school.add_trick("Rex", "sit")
        assert training_school.get_tricks("Rex") == ["sit"]

    def test_settings_driven_environment_with_snapshots_compression_and_cipher(self) -> None:
        key = AESCipher.create_key(32)
        eventstore = {
            "PERSISTENCE_MODULE": MODULE,
            "DJANGO_DB_ALIAS": "default",
            "IS_SNAPSHOTTING_ENABLED": "y",
            "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
            "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
            "CIPHER_KEY": key,
        }
        with override_settings(MESSAGING={"EVENTSTORE": eventstore}):
            assert application_env() == eventstore
            assert not [m for m in check_messaging_settings() if "EVENTSTORE" in m.msg]
            training_school = TrainingSchool(env=application_env())
        training_school.register("Fido")
        training_school.add_trick("Fido", "roll over")
        dog_id = Dog.create_id("Fido")
        training_school.take_snapshot(dog_id)
        training_school.add_trick("Fido", "play dead")
        assert training_school.get_tricks("Fido") == ["roll over", "play dead"]
        states = [bytes(r.state) for r in StoredEventRecord.objects.all()]
        assert states and not any(b"roll over" in s or b"Fido" in s for s in states)
        snapshot = AggregateRecord.objects.get(application_name="TrainingSchool")
        assert snapshot.purpose == "snapshots"
        assert snapshot.originator_version == 2
        assert b"roll over" not in bytes(snapshot.state)
        # The wrong key cannot read them.
        intruder = TrainingSchool(env={**application_env(), "CIPHER_KEY": AESCipher.create_key(32)})
        with pytest.raises(ValueError):
            intruder.get_tricks("Fido")

    def test_booleans_and_extra_variables_in_settings(self) -> None:
        with override_settings(
            MESSAGING={
                "EVENTSTORE": {
                    "PERSISTENCE_MODULE": MODULE,
                    "IS_SNAPSHOTTING_ENABLED": True,
                    "ENV": {"TRAININGSCHOOL_CIPHER_KEY": "k"},
                }
            }
        ):
            env = application_env(AGGREGATE_CACHE_MAXSIZE=10)
        assert env == {
            "PERSISTENCE_MODULE": MODULE,
            "IS_SNAPSHOTTING_ENABLED": "y",
            "TRAININGSCHOOL_CIPHER_KEY": "k",
            "AGGREGATE_CACHE_MAXSIZE": "10",
        }


class TestDjangoDbAlias(EventStoreTestCase):
    databases: ClassVar = {"default", "eventstore"}

    def test_events_go_to_the_named_database(self) -> None:
        school = TrainingSchool(env={"PERSISTENCE_MODULE": MODULE, "DJANGO_DB_ALIAS": "eventstore"})
        school.register("Fido")
        assert StoredEventRecord.objects.using("eventstore").count() == 1
        assert StoredEventRecord.objects.using("default").count() == 0
        assert school.get_tricks("Fido") == []

    def test_application_prefixed_alias_wins(self) -> None:
        school = TrainingSchool(
            env={
                "PERSISTENCE_MODULE": MODULE,
                "DJANGO_DB_ALIAS": "default",
                "TRAININGSCHOOL_DJANGO_DB_ALIAS": "eventstore",
            }
        )
        assert school.recorder.using == "eventstore"  # type: ignore[attr-defined]

    def test_alias_from_the_settings(self) -> None:
        with override_settings(MESSAGING={"EVENTSTORE": {"DJANGO_DB_ALIAS": "eventstore"}}):
            school = TrainingSchool(env={"PERSISTENCE_MODULE": MODULE})
        school.register("Rex")
        assert StoredEventRecord.objects.using("eventstore").count() == 1

    def test_unknown_alias_is_a_clear_error(self) -> None:
        with pytest.raises(OSError, match="'nowhere' is not in DATABASES"):
            TrainingSchool(env={"PERSISTENCE_MODULE": MODULE, "DJANGO_DB_ALIAS": "nowhere"})


class TestFactoryConfiguration(EventStoreTestCase):
    def test_found_by_module_name(self) -> None:
        factory = InfrastructureFactory.construct({"PERSISTENCE_MODULE": MODULE})
        assert type(factory) is Factory

    def test_bad_values_are_reported(self) -> None:
        with pytest.raises(OSError, match="ORIGINATOR_ID_TYPE"):
            Factory({"ORIGINATOR_ID_TYPE": "int"})
        with pytest.raises(OSError, match="DJANGO_SUBSCRIPTION_POLL_INTERVAL"):
            Factory({"DJANGO_SUBSCRIPTION_POLL_INTERVAL": "soon"})
        with pytest.raises(TypeError, match="APPLICATION_RECORDER_TOPIC"):
            Factory(
                {"APPLICATION_RECORDER_TOPIC": "eventsourcing.popo:POPOApplicationRecorder"}
            ).application_recorder()

    def test_not_installed_is_a_clear_error(self) -> None:
        from eventsourcing.persistence import OperationalError

        with (
            override_settings(INSTALLED_APPS=["django.contrib.contenttypes"]),
            pytest.raises(
                OperationalError, match=r"Add 'django_messaging\.eventstore' to INSTALLED_APPS"
            ),
        ):
            Factory({})

    def test_missing_tables_raise_an_eventsourcing_error(self) -> None:
        """Constructing the application works before ``migrate``; calling it then raises an
        eventsourcing persistence error, not a bare Django one."""
        from eventsourcing.persistence import PersistenceError

        school = TrainingSchool(env={"PERSISTENCE_MODULE": MODULE})
        connection = connections["default"]
        with connection.schema_editor() as editor:
            editor.delete_model(StoredEventRecord)
        try:
            with pytest.raises(PersistenceError):
                school.register("Fido")
        finally:
            with connection.schema_editor() as editor:
                editor.create_model(StoredEventRecord)


class TestSettingsChecks(EventStoreTestCase):
    def test_wrong_types_typos_and_values_fail_the_checks(self) -> None:
        with override_settings(
            MESSAGING={
                "EVENTSTORE": {
                    "IS_SNAPSHOTTING_ENABLED": "maybe",
                    "ORIGINATOR_ID_TYPE": "int",
                    "RUNNER": 5,
                    "CIPHR_KEY": "x",
                    "CIPHER_KEY": 12345,
                }
            }
        ):
            messages = [m for m in check_messaging_settings() if "EVENTSTORE" in m.msg]
        text = "\n".join(f"{m.id} {m.msg} {m.hint}" for m in messages)
        assert "IS_SNAPSHOTTING_ENABLED" in text and "not a yes/no value" in text
        assert "ORIGINATOR_ID_TYPE" in text and "'uuid' or 'text'" in text
        assert "['RUNNER'] must be str" in text
        assert "Did you mean 'CIPHER_KEY'?" in text
        assert "12345" not in text  # a secret value is never shown
