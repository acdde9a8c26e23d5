"""The registry of ``ModelSync`` declarations (``kafka.model_syncs``).

A leaf module: consumers' ``Topics`` read it, and it imports nothing of theirs.
"""

from __future__ import annotations

from typing import Any

from django_messaging.kafka.keyed import Registry

__all__ = ["ModelSyncRegistry", "model_syncs"]


class ModelSyncRegistry(Registry[Any]):
    """``ModelSync`` classes by ``module.ClassName``: filled as they are defined (an app's
    ``model_syncs.py`` is imported by ``autodiscover()``). What they generate is derived on use,
    from the settings of that moment: the topics a consumer runs (:meth:`topics_for`), the
    source declarations a connector merges into its config (:meth:`sources_for`)."""

    def __init__(self) -> None:
        super().__init__()
        self._topics: dict[tuple[str, str], Any] = {}

    def get_key(self, cls: Any) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def register(self, cls: Any) -> str:
        """Add a ``ModelSync`` class (done when it is defined); its ``registered()`` hook
        then registers what it declares (a JDBC sink connector, the signals of a Python
        source)."""
        key = super().register(cls)
        cls.registered()
        return key

    def unregister(self, key: str) -> None:
        """Remove a sync and undo what its ``registered()`` hook did."""
        cls = self._classes.pop(key, None)
        for cached in [k for k in self._topics if k[0] == key]:
            del self._topics[cached]
        if cls is not None:
            cls.unregistered()

    def syncs(self) -> list[Any]:
        return list(self._classes.values())

    def topics_for(self, consumer_cls: type) -> list[Any]:
        """The topics the registered syncs run on ``consumer_cls`` (Python sinks, enrichers),
        each built once and kept until :meth:`clear_topics`."""
        key = f"{consumer_cls.__module__}.{consumer_cls.__name__}"
        found = []
        for sync_key, sync in self._classes.items():
            for role, path, build in sync.consumer_topics():
                if path != key:
                    continue
                topic = self._topics.get((sync_key, role))
                if topic is None:
                    topic = self._topics[(sync_key, role)] = build()
                found.append(topic)
        return found

    def sources_for(self, connector_cls: type) -> list[tuple[Any, Any]]:
        """``(sync, source)`` of the syncs whose source is merged into ``connector_cls``."""
        path = f"{connector_cls.__module__}.{connector_cls.__qualname__}"
        found = []
        for sync in self._classes.values():
            source = getattr(sync, "source", None)
            connector_path = getattr(source, "connector_path", None)
            if connector_path is not None and connector_path(sync) == path:
                found.append((sync, source))
        return found

    def consumer_paths(self) -> list[str]:
        """The consumers the registered syncs run topics on."""
        paths: list[str] = []
        for sync in self._classes.values():
            for _role, path, _build in sync.consumer_topics():
                if path not in paths:
                    paths.append(path)
        return paths

    def clear_topics(self) -> None:
        """Forget the built sink topics (they are built again on next use)."""
        self._topics.clear()


#: The process-wide registry (``kafka.model_syncs``).
model_syncs = ModelSyncRegistry()
