"""Virtualenvs holding a reference library from PyPI, for the compatibility tests and the
benchmarks: ``reference_python(["django-cqrs==3.1.0", "Django>=5.2,<5.3"])``.

An environment is keyed by what it holds (the requirements and this interpreter), built in a
temporary directory and renamed into place, under a lock: test sessions running side by side
either build it once or wait for the one that is building it, and a build that dies half way
leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: One folder per clone (ignored by git); ``MESSAGING_REFERENCE_ENVS`` points elsewhere.
ENVS = Path(os.environ.get("MESSAGING_REFERENCE_ENVS", ROOT / ".reference-envs"))


def env_key(requirements: list[str]) -> str:
    """What decides the environment's contents: the requirements and the interpreter."""
    text = "\n".join([sys.version, sys.executable, *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a build takes well under a minute with a warm cache
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(target: Path, requirements: list[str]) -> None:
    python = target / "bin" / "python"
    uv = shutil.which("uv")  # ./dev puts it on PATH; plain venv + pip otherwise
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(target)], check=True)
        install = [uv, "pip", "install", "-q", "--python", str(python), *requirements]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", *requirements]
    subprocess.run(install, check=True, timeout=600)


def reference_python(requirements: list[str]) -> str:
    """The interpreter of a virtualenv that holds exactly ``requirements``."""
    ENVS.mkdir(parents=True, exist_ok=True)
    key = env_key(requirements)
    final = ENVS / key
    if not (final / "bin" / "python").exists():
        with _locked(ENVS / f"{key}.lock"):
            if not final.exists():
                building = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=ENVS))
                try:
                    _build(building, requirements)
                    (building / "requirements.txt").write_text("\n".join(requirements) + "\n")
                    building.rename(final)
                finally:
                    shutil.rmtree(building, ignore_errors=True)
    return str(final / "bin" / "python")
