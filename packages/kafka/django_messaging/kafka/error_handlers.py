"""``error_cb`` hooks for librdkafka clients (the ``ERROR_HANDLER`` setting)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError

from django_messaging.kafka.exceptions import DjangoKafkaError

logger = logging.getLogger(__name__)


class ClientErrorHandler:
    """Raise :class:`DjangoKafkaError` on fatal client errors; log the others as warnings.

    librdkafka recovers from non-fatal errors by itself (a broker restart, all brokers down for
    a while), so they are logged, not raised.
    """

    def __call__(self, error: KafkaError) -> None:
        if error.fatal():
            raise DjangoKafkaError(error)
        logger.warning("kafka client error: %s", error)
