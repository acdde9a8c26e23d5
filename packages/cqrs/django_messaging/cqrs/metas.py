"""Metaclasses that register master and replica models when they are defined."""

from __future__ import annotations

from typing import Any

from django.db.models.base import ModelBase

from django_messaging.cqrs.constants import ALL_BASIC_FIELDS
from django_messaging.cqrs.registries import MasterRegistry, ReplicaRegistry
from django_messaging.cqrs.signals import MasterSignals
from django_messaging.cqrs.tracker import CQRSTracker


class MasterMeta(ModelBase):
    def __new__(mcs, name: str, bases: tuple, attrs: dict, **kwargs: Any) -> Any:
        model_cls: Any = super().__new__(mcs, name, bases, attrs, **kwargs)
        if name != "MasterMixin" and not model_cls._meta.abstract and not model_cls._meta.proxy:
            mcs.register(model_cls)
        return model_cls

    @staticmethod
    def register(model_cls: Any) -> Any:
        """Validate and register a master model (use directly for ``RawMasterMixin`` models)."""
        name = model_cls.__qualname__
        if not model_cls.CQRS_ID:
            raise ValueError(f"{name}: CQRS_ID must be set")
        fields = model_cls.CQRS_FIELDS
        if model_cls.CQRS_SERIALIZER and fields != ALL_BASIC_FIELDS:
            raise ValueError(f"{name}: CQRS_FIELDS and CQRS_SERIALIZER cannot be used together")
        if fields != ALL_BASIC_FIELDS:
            if not isinstance(fields, list | tuple):
                raise ValueError(f"{name}: CQRS_FIELDS must be '__all__' or a list of names")
            if len(set(fields)) != len(fields):
                raise ValueError(f"{name}: CQRS_FIELDS has duplicate names")
            known = {f.name for f in model_cls._meta.concrete_fields}
            unknown = [f for f in fields if f not in known]
            if unknown:
                raise ValueError(f"{name}: CQRS_FIELDS names unknown fields {unknown}")
            if model_cls._meta.pk.name not in fields:
                raise ValueError(f"{name}: CQRS_FIELDS must include the primary key")
        if model_cls.CQRS_TRACKED_FIELDS:
            model_cls._cqrs_tracker = CQRSTracker(model_cls)
        MasterRegistry.register_model(model_cls)
        MasterSignals.register_model(model_cls)
        return model_cls


class ReplicaMeta(ModelBase):
    def __new__(mcs, name: str, bases: tuple, attrs: dict, **kwargs: Any) -> Any:
        model_cls: Any = super().__new__(mcs, name, bases, attrs, **kwargs)
        if name != "ReplicaMixin" and not model_cls._meta.abstract:
            mcs.register(model_cls)
        return model_cls

    @staticmethod
    def register(model_cls: Any) -> Any:
        """Validate and register a replica model (or a ``RawReplicaMixin`` class)."""
        name = model_cls.__qualname__
        if not model_cls.CQRS_ID:
            raise ValueError(f"{name}: CQRS_ID must be set")
        mapping = getattr(model_cls, "CQRS_MAPPING", None)
        meta = getattr(model_cls, "_meta", None)
        if mapping is not None and meta is not None:
            if not isinstance(mapping, dict):
                raise ValueError(f"{name}: CQRS_MAPPING must be a dict")
            values = list(mapping.values())
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: CQRS_MAPPING maps two master fields to one field")
            known = {f.name for f in meta.concrete_fields}
            unknown = [v for v in values if v not in known]
            if unknown:
                raise ValueError(f"{name}: CQRS_MAPPING names unknown fields {unknown}")
            if meta.pk.name not in values:
                raise ValueError(f"{name}: CQRS_MAPPING must map the primary key")
        ReplicaRegistry.register_model(model_cls)
        return model_cls
