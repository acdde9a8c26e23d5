"""The chaos soak: every package under steady load at once, on private services, while a seeded
schedule of faults kills workers, restarts brokers and databases, cuts connections and sends
garbage; then a checker proves from the databases and brokers that nothing was lost.

``python -m tests.chaos --help`` (``nox -s chaos``); ``tests/chaos/test_smoke.py`` is the short
variant that ``nox -s faults`` runs.
"""
