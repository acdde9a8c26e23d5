"""The ``MESSAGING["EVENTSTORE"]`` settings section: every key, its default and its type.

Apart from ``RUNNER`` and ``ENV``, the keys are eventsourcing environment variables that
applications built with :func:`application_env` receive, so that the whole environment of a
project's event-sourced applications lives in the Django settings::

    MESSAGING = {
        "EVENTSTORE": {
            "PERSISTENCE_MODULE": "django_messaging.eventstore",
            "DJANGO_DB_ALIAS": "default",
            "IS_SNAPSHOTTING_ENABLED": "y",
            "RUNNER": "training_school.runner",
        }
    }
"""

from __future__ import annotations

from typing import Any

from django_messaging.core.settings import Section, Setting
from django_messaging.eventstore.tables import application_tables


def _yes_no(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if str(value).lower() in {
        "y",
        "yes",
        "t",
        "true",
        "on",
        "1",
        "n",
        "no",
        "f",
        "false",
        "off",
        "0",
    }:
        return None
    return f"{value!r} is not a yes/no value (use True/False, 'y'/'n', 'true'/'false')"


def _id_type(value: Any) -> str | None:
    return None if str(value).lower() in {"uuid", "text"} else "must be 'uuid' or 'text'"


def _table_prefix(value: Any) -> str | None:
    try:
        application_tables(value)
    except ValueError as exc:
        return str(exc)
    return None


_ENV_KEYS: dict[str, Setting] = {
    "PERSISTENCE_MODULE": Setting(None, str, help="eventsourcing persistence module"),
    "DJANGO_DB_ALIAS": Setting(None, str, help="DATABASES alias of the event tables"),
    "IS_SNAPSHOTTING_ENABLED": Setting(None, (str, bool), validate=_yes_no),
    "COMPRESSOR_TOPIC": Setting(None, str),
    "CIPHER_TOPIC": Setting(None, str),
    "CIPHER_KEY": Setting(None, str, secret=True),
    "TRANSCODER_TOPIC": Setting(None, str),
    "MAPPER_TOPIC": Setting(None, str),
    "ORIGINATOR_ID_TYPE": Setting(None, str, validate=_id_type),
    "APPLICATION_RECORDER_TOPIC": Setting(None, str),
    "TRACKING_RECORDER_TOPIC": Setting(None, str),
    "PROCESS_RECORDER_TOPIC": Setting(None, str),
    "AGGREGATE_CACHE_MAXSIZE": Setting(None, (str, int)),
    "AGGREGATE_CACHE_FASTFORWARD": Setting(None, (str, bool), validate=_yes_no),
    "AGGREGATE_CACHE_FASTFORWARD_SKIPPING": Setting(None, (str, bool), validate=_yes_no),
    "DEEPCOPY_FROM_AGGREGATE_CACHE": Setting(None, (str, bool), validate=_yes_no),
    "DJANGO_TABLE_PREFIX": Setting(
        None,
        str,
        validate=_table_prefix,
        help="own tables <prefix>_events, _snapshots, _tracking (see operations.py)",
    ),
    "DJANGO_SUBSCRIPTION_POLL_INTERVAL": Setting(
        None, (str, int, float), help="seconds between polls of a subscription without news"
    ),
}

settings = Section(
    "EVENTSTORE",
    "django_messaging.eventstore",
    {
        **_ENV_KEYS,
        "ENV": Setting(
            {}, dict, open=True, help="more environment variables, e.g. per-application keys"
        ),
        "RUNNER": Setting(
            None,
            str,
            help="'app_label.attribute' or 'dotted.path.get_runner' for sync_followers",
        ),
    },
)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


def application_env(**overrides: Any) -> dict[str, str]:
    """The eventsourcing environment declared in ``MESSAGING["EVENTSTORE"]``.

    Unset keys are left out, ``ENV`` is merged in, then ``overrides``; booleans become
    ``"y"``/``"n"``. Pass the result as an application's ``env``::

        TrainingSchool(env=application_env())
    """
    env: dict[str, str] = {}
    for key in _ENV_KEYS:
        value = settings.get(key)
        if value is not None:
            env[key] = _env_value(value)
    for key, value in {**settings.ENV, **overrides}.items():
        if value is not None:
            env[str(key)] = _env_value(value)
    return env
