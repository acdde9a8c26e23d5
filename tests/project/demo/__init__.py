"""``nox -s demo``: a scripted end-to-end tour on tests/project against the real services.

Each package adds a module here with ``TITLE`` and ``run(ctx)``; ``ORDER`` fixes the sequence.
"""
