"""``nox -s bench``: side-by-side benchmarks. See harness.py for how a scenario is written."""
