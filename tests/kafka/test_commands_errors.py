"""``substitute_error`` at django-kafka's path ``management.commands.errors`` (0.5.5, 0.5.7)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, get_commands

from django_messaging.kafka.management.commands.errors import substitute_error


class CustomError(Exception):
    pass


@pytest.mark.parametrize("error", [ValueError("value error"), KeyError("k"), CustomError("custom")])
def test_listed_errors_become_the_substitution_with_the_original_message(error):
    @substitute_error({ValueError: 1, KeyError: 2, CustomError: 3}.keys(), CommandError)
    def fail():
        raise error

    with pytest.raises(CommandError) as caught:
        fail()
    assert str(caught.value) == str(error)
    assert caught.value.__cause__ is error


def test_other_errors_and_results_pass_unchanged():
    @substitute_error([ValueError], CommandError)
    def run(value):
        """Docs."""
        if value == "boom":
            raise RuntimeError("boom")
        return value * 2

    assert run(21) == 42
    assert (run.__name__, run.__doc__) == ("run", "Docs.")
    with pytest.raises(RuntimeError, match="boom"):
        run("boom")


def test_it_is_not_a_management_command():
    assert "errors" not in get_commands()
    assert get_commands()["kafka_connect"] == "django_messaging.kafka"
