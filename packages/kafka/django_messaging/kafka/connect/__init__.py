"""Kafka Connect: connectors declared in Python, their REST client, and the ``kafka_skip`` model.

``Connector`` (``connect.connector``), ``KafkaConnectClient`` (``connect.client``) and
``KafkaConnectSkipModel`` / ``KafkaConnectSkipQueryset`` (``connect.models``) live in their own
modules, as in django-kafka; this package imports none of them eagerly.
"""
