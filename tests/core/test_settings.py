from __future__ import annotations

import pytest
from django.test import override_settings

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.settings import _SECTIONS, KNOWN_SECTIONS, Section, Setting


@pytest.fixture
def section(monkeypatch: pytest.MonkeyPatch) -> Section:
    monkeypatch.setitem(KNOWN_SECTIONS, "DEMO", "django_messaging.core")
    declared = Section(
        "DEMO",
        "django_messaging.core",
        {
            "TIMEOUT": Setting(5, int),
            "CONFIG": Setting({}, dict, open=True),
            "NESTED": Setting(
                None, dict, children={"queue": Setting("q", str), "n": Setting(1, int)}
            ),
        },
        legacy="OLD_DEMO",
    )
    yield declared
    _SECTIONS.pop("DEMO", None)


def test_defaults_when_unset(section: Section) -> None:
    with override_settings(MESSAGING={}):
        assert section.TIMEOUT == 5
        assert section["CONFIG"] == {}


def test_values_are_read_live_not_captured(section: Section) -> None:
    with override_settings(MESSAGING={"DEMO": {"TIMEOUT": 7}}):
        assert section.TIMEOUT == 7
        with override_settings(MESSAGING={"DEMO": {"TIMEOUT": 9}}):
            assert section.TIMEOUT == 9
        assert section.TIMEOUT == 7


def test_in_place_changes_are_seen(section: Section) -> None:
    messaging: dict = {"DEMO": {}}
    with override_settings(MESSAGING=messaging):
        assert section.TIMEOUT == 5
        messaging["DEMO"]["TIMEOUT"] = 11
        assert section.TIMEOUT == 11


def test_defaults_are_copies(section: Section) -> None:
    with override_settings(MESSAGING={}):
        section.CONFIG["x"] = 1
        assert section.CONFIG == {}


def test_nested_dict_is_merged_over_child_defaults(section: Section) -> None:
    with override_settings(MESSAGING={"DEMO": {"NESTED": {"n": 3}}}):
        assert section.NESTED == {"queue": "q", "n": 3}
    with override_settings(MESSAGING={}):
        assert section.NESTED == {"queue": "q", "n": 1}


def test_one_child_is_read_like_the_merged_dict(section: Section) -> None:
    with override_settings(MESSAGING={"DEMO": {"NESTED": {"n": 3}}}):
        assert (section.child("NESTED", "n"), section.child("NESTED", "queue")) == (3, "q")
    with override_settings(MESSAGING={}, OLD_DEMO={"NESTED": {"queue": "old"}}):
        assert section.child("NESTED", "queue") == "old"
    with override_settings(MESSAGING={}):
        assert section.child("NESTED", "n") == 1
        with pytest.raises(KeyError):
            section.child("NESTED", "nope")


def test_legacy_top_level_setting_is_used_when_section_missing(section: Section) -> None:
    with override_settings(MESSAGING={}, OLD_DEMO={"TIMEOUT": 42}):
        assert section.TIMEOUT == 42
    with override_settings(MESSAGING={"DEMO": {}}, OLD_DEMO={"TIMEOUT": 42}):
        assert section.TIMEOUT == 5  # the MESSAGING section wins, even when empty


def test_unknown_key_names_the_known_ones(section: Section) -> None:
    with pytest.raises(ConfigurationError, match="TIMEOUT"):
        section.get("TIMOUT")
    with pytest.raises(AttributeError):
        section.TIMOUT  # noqa: B018


def test_as_dict_has_every_key(section: Section) -> None:
    with override_settings(MESSAGING={"DEMO": {"TIMEOUT": 1}}):
        assert section.as_dict() == {"TIMEOUT": 1, "CONFIG": {}, "NESTED": {"queue": "q", "n": 1}}


# --- import paths, caches and the reference libraries' dicts -----------------------------------


@pytest.fixture
def importing() -> Section:
    section = Section(
        "TEST_IMPORTS",
        "tests",
        {
            "HANDLER": Setting("json.dumps", (str, type(len)), imports=True),
            "PLAIN": Setting(1, int),
            "NESTED": Setting(
                {},
                dict,
                children={
                    "FUNCTION": Setting(None, None, imports=True),
                    "NAME": Setting("n", str),
                },
            ),
        },
    )
    yield section
    _SECTIONS.pop("TEST_IMPORTS", None)


def test_an_import_setting_is_imported_once_and_again_after_a_change(importing: Section) -> None:
    import json

    assert importing.imported("HANDLER") is json.dumps
    importing._imported["HANDLER"] = "cached"
    assert importing.imported("HANDLER") == "cached"
    with override_settings(MESSAGING={"TEST_IMPORTS": {"HANDLER": "json.loads"}}):
        assert importing.imported("HANDLER") is json.loads
    assert importing.imported("HANDLER") is json.dumps


def test_an_import_setting_that_cannot_be_imported_names_the_setting(importing: Section) -> None:
    where = r"MESSAGING\['TEST_IMPORTS'\]\['HANDLER'\]"
    with (
        override_settings(MESSAGING={"TEST_IMPORTS": {"HANDLER": "json.nope"}}),
        pytest.raises(ConfigurationError, match=where),
    ):
        importing.imported("HANDLER")
    with pytest.raises(ConfigurationError, match="not declared as an import path"):
        importing.imported("PLAIN")


def test_a_nested_import_setting_is_reached_through_its_parent_keys(importing: Section) -> None:
    import json

    assert importing.imported("NESTED", "FUNCTION") is None  # the default, nothing to import
    with override_settings(MESSAGING={"TEST_IMPORTS": {"NESTED": {"FUNCTION": "json.loads"}}}):
        assert importing.imported("NESTED", "FUNCTION") is json.loads
        assert importing.imported("NESTED", "FUNCTION") is importing._imported["NESTED.FUNCTION"]
    with (
        override_settings(MESSAGING={"TEST_IMPORTS": {"NESTED": {"FUNCTION": "json.nope"}}}),
        pytest.raises(ConfigurationError, match=r"\['NESTED'\]\['FUNCTION'\] = 'json.nope'"),
    ):
        importing.imported("NESTED", "FUNCTION")
    with pytest.raises(ConfigurationError, match="not declared as an import path"):
        importing.imported("NESTED", "NAME")
    with pytest.raises(ConfigurationError, match="has no setting 'MISSING'"):
        importing.imported("NESTED", "MISSING")


def test_on_change_callbacks_run_when_messaging_changes_only() -> None:
    from django_messaging.core.settings import _ON_CHANGE, on_change

    calls: list[int] = []
    callback = on_change(lambda: calls.append(1))
    try:
        with override_settings(SOMETHING_ELSE=1):
            pass
        assert calls == []
        with override_settings(MESSAGING={}):
            pass
        assert calls == [1, 1]  # entering and leaving the override
    finally:
        _ON_CHANGE.remove(callback)
