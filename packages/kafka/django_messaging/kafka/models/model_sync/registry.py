"""The ``ModelSync`` registry, at django-kafka's path (it lives in a leaf module of its own)."""

from django_messaging.kafka.sync_registry import ModelSyncRegistry, model_syncs

model_sync_registry = model_syncs

__all__ = ["ModelSyncRegistry", "model_sync_registry"]
