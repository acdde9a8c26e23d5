"""System checks beyond types: what the registered ``ModelSync`` declarations need to run."""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.sync_registry import model_syncs


@checks.register("messaging")
def check_model_syncs(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A Python sink needs a consumer, a connector source a connector, and both must import."""
    errors: list[checks.CheckMessage] = []
    for key in model_syncs:
        sync = model_syncs[key]
        sink, source = sync.sink, sync.source
        try:
            if hasattr(sink, "consumer_path") and sink.consumer_path(sync) is None:
                errors.append(
                    checks.Error(
                        f"{key}.sink has no consumer to run on.",
                        hint="Pass consumer='app.consumers.MyConsumer' to the sink, or set "
                        "MESSAGING['KAFKA']['MODEL_SYNC_CONSUMER'].",
                        id="messaging.E101",
                    )
                )
            if hasattr(source, "connector_path") and source.connector_path(sync) is None:
                errors.append(
                    checks.Error(
                        f"{key}.source joins no connector.",
                        hint="Pass connector='app.connectors.MyConnector' to the source, or "
                        "set MESSAGING['KAFKA']['MODEL_SYNC_SOURCE_CONNECTOR'].",
                        id="messaging.E102",
                    )
                )
            sync.consumer_topics()  # an enricher consumer that does not import
        except DjangoKafkaError as exc:
            errors.append(checks.Error(str(exc), id="messaging.E103"))
    return errors
