"""What the five distributions claim to support is what the test sessions run."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import django
import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = [ROOT / "pyproject.toml", *sorted(ROOT.glob("packages/*/pyproject.toml"))]


def _noxfile_django_versions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DJANGO":
            return set(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py has no DJANGO table")


def _project(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


@pytest.mark.parametrize("path", PYPROJECTS, ids=lambda p: p.parent.name)
def test_django_classifiers_are_the_versions_the_sessions_test(path: Path) -> None:
    classifiers = _project(path)["classifiers"]
    claimed = {
        c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django ::")
    }
    assert claimed == _noxfile_django_versions()


@pytest.mark.parametrize("path", PYPROJECTS, ids=lambda p: p.parent.name)
def test_python_classifiers_are_the_interpreter_the_sessions_use(path: Path) -> None:
    project = _project(path)
    claimed = {
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert claimed == {f"{sys.version_info.major}.{sys.version_info.minor}"}
    assert project["requires-python"] == ">=3.11"


def test_the_django_range_admits_the_running_django_and_no_untested_major() -> None:
    dependencies = _project(ROOT / "pyproject.toml")["dependencies"]
    (spec,) = [d for d in dependencies if d.startswith("Django")]
    assert spec == "Django>=4.2,<5.3"
    assert f"{django.VERSION[0]}.{django.VERSION[1]}" in _noxfile_django_versions()


@pytest.mark.parametrize("path", PYPROJECTS[1:], ids=lambda p: p.parent.name)
def test_every_dependency_has_an_upper_bound_below_its_next_major(path: Path) -> None:
    for requirement in _project(path)["dependencies"]:
        if requirement.startswith("django-messaging"):
            continue
        assert "<" in requirement, f"{path.parent.name}: {requirement} has no upper bound"
