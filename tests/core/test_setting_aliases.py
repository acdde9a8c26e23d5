"""One key style in ``MESSAGING`` (UPPER_SNAKE, no package prefix) with the reference libraries'
spellings accepted as aliases: read as the key, both given is ``messaging.E009``."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_messaging.core.checks import check_messaging_settings
from django_messaging.core.settings import _SECTIONS, KNOWN_SECTIONS, Section, Setting
from django_messaging.cqrs.conf import master_setting, replica_setting
from django_messaging.cqrs.conf import settings as cqrs
from django_messaging.outbox.conf import settings as outbox


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Section:
    monkeypatch.setitem(KNOWN_SECTIONS, "DEMO", "django_messaging.core")
    section = Section(
        "DEMO",
        "django_messaging.core",
        {
            "CLAIM_TIMEOUT": Setting(10, int, aliases=("DEFAULT_CLAIM_TIMEOUT",)),
            "SIDE": Setting(
                {},
                dict,
                aliases=("side",),
                children={"GRACE": Setting(60, int, aliases=("CQRS_GRACE", "grace"))},
            ),
        },
        legacy="DEMO_LEGACY",
    )
    yield section
    _SECTIONS.pop("DEMO", None)


def demo_checks(messaging: object) -> list:
    with override_settings(MESSAGING=messaging):
        return [m for m in check_messaging_settings() if "DEMO" in m.msg]


def test_an_alias_is_read_as_its_key(demo: Section) -> None:
    with override_settings(MESSAGING={"DEMO": {"DEFAULT_CLAIM_TIMEOUT": 3}}):
        assert demo.CLAIM_TIMEOUT == demo.DEFAULT_CLAIM_TIMEOUT == demo["CLAIM_TIMEOUT"] == 3
        assert demo.path("CLAIM_TIMEOUT") == "MESSAGING['DEMO']['DEFAULT_CLAIM_TIMEOUT']"
    with override_settings(MESSAGING={"DEMO": {"side": {"CQRS_GRACE": 5}}}):
        assert demo.child("SIDE", "GRACE") == demo.child("side", "grace") == 5
        assert demo.SIDE == {"GRACE": 5}
        assert demo.SIDE["CQRS_GRACE"] == demo.side.get("grace") == 5
        assert "CQRS_GRACE" in demo.SIDE
    with override_settings(MESSAGING={}, DEMO_LEGACY={"DEFAULT_CLAIM_TIMEOUT": 4}):
        assert demo.CLAIM_TIMEOUT == 4
    assert demo_checks({"DEMO": {"DEFAULT_CLAIM_TIMEOUT": 3, "side": {"grace": 1}}}) == []


def test_a_key_given_with_its_alias_is_an_error_and_the_key_wins(demo: Section) -> None:
    messaging = {"DEMO": {"CLAIM_TIMEOUT": 3, "DEFAULT_CLAIM_TIMEOUT": 4}}
    (message,) = demo_checks(messaging)
    assert message.id == "messaging.E009"
    assert "'CLAIM_TIMEOUT' and 'DEFAULT_CLAIM_TIMEOUT'" in message.msg
    assert "Keep 'CLAIM_TIMEOUT'" in message.hint
    with override_settings(MESSAGING=messaging):
        assert demo.CLAIM_TIMEOUT == 3
    (nested,) = demo_checks({"DEMO": {"SIDE": {"GRACE": 1, "grace": 2}}})
    assert nested.id == "messaging.E009" and "['SIDE']" in nested.msg


def test_did_you_mean_knows_both_spellings(demo: Section) -> None:
    (old,) = demo_checks({"DEMO": {"DEFAULT_CLAIM_TIMOUT": 3}})
    assert old.id == "messaging.E004" and "Did you mean 'DEFAULT_CLAIM_TIMEOUT'?" in old.hint
    (new,) = demo_checks({"DEMO": {"CLAIM_TIMOUT": 3}})
    assert "Did you mean 'CLAIM_TIMEOUT'?" in new.hint


@pytest.mark.parametrize(
    "section,name,alias",
    [
        (section, name, alias)
        for section in (outbox, cqrs)
        for name, spec in section.schema.items()
        for alias in spec.aliases
    ],
)
def test_every_old_spelling_of_a_key_keeps_working(section, name, alias) -> None:
    value = object()
    with override_settings(MESSAGING={section.name: {alias: value}}):
        assert section.get(name) is value


@pytest.mark.parametrize(
    "parent,read,name,alias",
    [
        (parent, read, name, alias)
        for parent, read in (("MASTER", master_setting), ("REPLICA", replica_setting))
        for name, spec in cqrs.schema[parent].children.items()
        for alias in spec.aliases
    ],
)
def test_every_old_spelling_of_a_cqrs_master_or_replica_key_keeps_working(
    parent, read, name, alias
) -> None:
    value = object()
    for side in (parent, parent.lower()):
        with override_settings(MESSAGING={"CQRS": {side: {alias: value}}}):
            assert read(name) is value and read(alias) is value
            assert cqrs.get(parent)[alias] is value


def test_the_test_project_settings_pass_the_checks() -> None:
    """They are written in the old spellings: no error, no E009."""
    assert [m for m in check_messaging_settings() if m.level >= 40] == []
