"""Master side signal handlers: they say that a master instance was saved or deleted, and
:mod:`django_messaging.cqrs.publishing` decides how its message travels.

``post_bulk_create`` and ``post_update`` are sent by ``Model.cqrs.bulk_create`` and
``Model.cqrs.bulk_update`` (Django has no signals for those). Every handler honours
:func:`django_messaging.core.suppress`: inside ``with suppress():`` (or ``suppress([CQRS_ID])``)
nothing is published, while revisions still count.
"""

from __future__ import annotations

from typing import Any

from django.db import router
from django.db.models import signals
from django.db.models.expressions import BaseExpression
from django.dispatch import Signal

from django_messaging.cqrs import publishing

#: Sent after ``Model.cqrs.bulk_create``: ``sender=model, instances=[...], using=alias``.
post_bulk_create = Signal()
#: Sent after ``Model.cqrs.bulk_update``: ``sender=model, instances=[...], using=alias``.
post_update = Signal()


class MasterSignals:
    """Signal registry and handlers for master models."""

    @classmethod
    def register_model(cls, model_cls: Any) -> None:
        """Connect the handlers for ``model_cls`` and its proxies only (a proxy defined later is
        connected when Django prepares it), so other models keep Django's fast delete."""
        model_cls._cqrs_master_registered = True
        uid = f"django_messaging.cqrs.{model_cls._meta.label_lower}"
        signals.post_save.connect(cls.post_save, sender=model_cls, dispatch_uid=f"{uid}.save")
        signals.pre_delete.connect(
            cls.pre_delete, sender=model_cls, dispatch_uid=f"{uid}.pre_delete"
        )
        signals.post_delete.connect(cls.post_delete, sender=model_cls, dispatch_uid=f"{uid}.delete")
        post_bulk_create.connect(
            cls.post_bulk_create, sender=model_cls, dispatch_uid=f"{uid}.bulk_create"
        )
        post_update.connect(cls.post_bulk_update, sender=model_cls, dispatch_uid=f"{uid}.update")
        for subclass in model_cls.__subclasses__():
            if subclass._meta.proxy:
                cls.register_model(subclass)

    @classmethod
    def post_save(cls, sender: Any, **kwargs: Any) -> None:
        instance = kwargs["instance"]
        publishing.saved(
            instance,
            kwargs.get("using") or router.db_for_write(sender, instance=instance),
            update_fields=kwargs.get("update_fields"),
            sync=kwargs.get("sync", False),
            queue=kwargs.get("queue"),
        )

    @classmethod
    def pre_delete(cls, sender: Any, **kwargs: Any) -> None:
        """An instance saved but not yet serialized still holds ``F('cqrs_revision') + 1``:
        read the revision while the row is there, for the DELETE to carry it."""
        instance = kwargs["instance"]
        if isinstance(instance.cqrs_revision, BaseExpression) and publishing.produces(instance):
            instance.refresh_from_db(fields=["cqrs_revision"], using=kwargs.get("using"))

    @classmethod
    def post_delete(cls, sender: Any, **kwargs: Any) -> None:
        instance = kwargs["instance"]
        publishing.deleted(
            instance, kwargs.get("using") or router.db_for_write(sender, instance=instance)
        )

    @classmethod
    def post_bulk_create(cls, sender: Any, **kwargs: Any) -> None:
        for instance in kwargs["instances"]:
            cls.post_save(sender, instance=instance, using=kwargs.get("using"), created=True)

    @classmethod
    def post_bulk_update(cls, sender: Any, **kwargs: Any) -> None:
        for instance in kwargs["instances"]:
            cls.post_save(sender, instance=instance, using=kwargs.get("using"), created=False)


def _connect_proxy(sender: Any, **kwargs: Any) -> None:
    """A proxy of a master model sends signals as itself: connect the handlers for it too."""
    if sender._meta.proxy and getattr(sender, "_cqrs_master_registered", False):
        MasterSignals.register_model(sender)


signals.class_prepared.connect(_connect_proxy, dispatch_uid="django_messaging.cqrs.proxies")
