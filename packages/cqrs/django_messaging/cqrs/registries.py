"""Which model answers to which ``CQRS_ID``, on the master side and on the replica side."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

logger = logging.getLogger(__name__)


class RegistryMixin:
    models: ClassVar[dict[str, Any]]

    @classmethod
    def register_model(cls, model_cls: Any) -> None:
        """Register ``model_cls`` under its ``CQRS_ID``; a second model with the same id is an error."""
        cqrs_id = model_cls.CQRS_ID
        if not cqrs_id:
            raise ValueError(f"{model_cls.__qualname__}: CQRS_ID must be set")
        existing = cls.models.get(cqrs_id)
        if existing is not None and existing.__qualname__ != model_cls.__qualname__:
            raise ValueError(
                f"Two models use CQRS_ID {cqrs_id!r}: {existing.__qualname__} and "
                f"{model_cls.__qualname__}; CQRS_ID must be unique in a service"
            )
        cls.models[cqrs_id] = model_cls

    @classmethod
    def get_model_by_cqrs_id(cls, cqrs_id: str) -> Any:
        """The model registered under ``cqrs_id``, or None (logged)."""
        model = cls.models.get(cqrs_id)
        if model is None:
            logger.error("no %s model with CQRS_ID %r", cls.side, cqrs_id)
        return model

    side = "registered"


class MasterRegistry(RegistryMixin):
    models: ClassVar[dict[str, Any]] = {}
    side = "master"


class ReplicaRegistry(RegistryMixin):
    models: ClassVar[dict[str, Any]] = {}
    side = "replica"

    @classmethod
    def register_model(cls, model_cls: Any) -> None:
        super().register_model(model_cls)
