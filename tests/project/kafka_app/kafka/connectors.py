"""``<app>/kafka/connectors.py`` is imported by autodiscovery like ``<app>/connectors.py``.

It registers nothing, so that the ``kafka_connect`` tests see only the connectors of
``kafka_app/connectors.py``; the test of autodiscovery checks that it was imported.
"""

IMPORTED = True
