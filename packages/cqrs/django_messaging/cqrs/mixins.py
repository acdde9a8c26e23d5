# mypy: disable-error-code="var-annotated"
"""Master and replica model mixins.

A master model (``MasterMixin``) carries ``cqrs_revision`` (incremented once per transaction in
which it is saved) and ``cqrs_updated``, and publishes a message when the transaction commits. A
replica model (``ReplicaMixin``) applies those messages: newer revisions win, duplicates and
stale revisions are dropped, and a delete leaves a tombstone so that a late save of a deleted
row never brings it back.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.db import models, router, transaction
from django.db.models.expressions import BaseExpression

from django_messaging.core.imports import import_from_setting
from django_messaging.core.suppression import is_suppressed
from django_messaging.cqrs import publishing
from django_messaging.cqrs.conf import master_setting, replica_setting
from django_messaging.cqrs.constants import ALL_BASIC_FIELDS
from django_messaging.cqrs.controller import staging
from django_messaging.cqrs.managers import MasterManager, ReplicaManager
from django_messaging.cqrs.metas import MasterMeta, ReplicaMeta
from django_messaging.cqrs.serialization import to_wire
from django_messaging.cqrs.signals import post_bulk_create, post_update
from django_messaging.cqrs.utils import get_meta

logger = logging.getLogger(__name__)

#: The ``F('cqrs_revision') + 1`` the mixin set, told apart from one the caller set.
_OWN_INCREMENT = "_cqrs_own_increment"


class RawMasterMixin(models.Model):
    """Base of :class:`MasterMixin`; register subclasses yourself with ``MasterMeta.register``."""

    #: Unique CQRS identifier of the model across services.
    CQRS_ID: ClassVar[str | None] = None
    #: False: nothing is published (the revision still counts).
    CQRS_PRODUCE: ClassVar[bool] = True
    #: Field names of the default serialization, or ``'__all__'``.
    CQRS_FIELDS: ClassVar[Any] = ALL_BASIC_FIELDS
    #: Dotted path of a serializer class called as ``Serializer(instance).data``.
    CQRS_SERIALIZER: ClassVar[str | None] = None
    #: Fields whose previous values travel as ``previous_data`` (list or ``'__all__'``).
    CQRS_TRACKED_FIELDS: ClassVar[Any] = None

    cqrs_revision = models.IntegerField(
        default=0, help_text="Incremented once per transaction that saves the row."
    )
    cqrs_updated = models.DateTimeField(auto_now=True, help_text="Last CQRS-relevant change.")

    objects = models.Manager()
    cqrs = MasterManager()

    class Meta:
        abstract = True

    # -- saves count ---------------------------------------------------------------------
    @property
    def cqrs_saves_count(self) -> int:
        """How many times this instance has been saved in the current transaction."""
        return getattr(self, "_cqrs_saves_count", 0)

    @property
    def is_initial_cqrs_save(self) -> bool:
        """True until the instance has been registered for publishing in this transaction."""
        return self.cqrs_saves_count < 2

    def reset_cqrs_saves_count(self) -> None:
        """Reset the counter (done on commit; call it yourself after a rollback)."""
        self._cqrs_saves_count = 0

    # -- save ----------------------------------------------------------------------------
    def save(self, *args: Any, update_cqrs_fields: bool | None = None, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_cqrs_fields is None and update_fields is not None:
            update_cqrs_fields = master_setting("AUTO_UPDATE_FIELDS")
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        if (
            self.CQRS_PRODUCE
            and not transaction.get_connection(using).in_atomic_block
            and publishing.mode() == "outbox"
            and not is_suppressed(self.CQRS_ID)
        ):
            # The message is stored with the row: by the row's own INSERT where it can be (see
            # controller.staging), otherwise in a transaction of the save's own (see signals).
            self._cqrs_saves_count = 0
            if staging.applies(self, using, kwargs):
                self.__dict__[staging.REQUESTED] = True
                try:
                    self._cqrs_save(update_fields, update_cqrs_fields, using, args, kwargs)
                finally:
                    self.__dict__.pop(staging.REQUESTED, None)
                    self.__dict__.pop(staging.STAGED_ID, None)
                return
            with transaction.atomic(using=using):
                self.save(*args, update_cqrs_fields=update_cqrs_fields, **kwargs)
            return
        self._cqrs_save(update_fields, update_cqrs_fields, using, args, kwargs)

    def _cqrs_save(
        self,
        update_fields: Any,
        update_cqrs_fields: bool | None,
        using: str,
        args: tuple,
        kwargs: dict[str, Any],
    ) -> None:
        if transaction.get_connection(using).in_atomic_block:
            if self.cqrs_saves_count and publishing.commit_hook_discarded(self, using):
                # Its earlier saves were rolled back (a savepoint, or the whole transaction):
                # count this one as the first, as django-cqrs asks callers to do by hand.
                self.reset_cqrs_saves_count()
                publishing.forget_staged(self)
            self._cqrs_saves_count = self.cqrs_saves_count + 1
        else:
            self._cqrs_saves_count = 0
        increment = False
        if update_fields is None:
            increment = not self._state.adding and self.is_initial_cqrs_save
        elif update_cqrs_fields:
            increment = True
            kwargs["update_fields"] = {*update_fields, "cqrs_revision", "cqrs_updated"}
        if increment:
            self.cqrs_revision = models.F("cqrs_revision") + 1
            self.__dict__[_OWN_INCREMENT] = self.cqrs_revision
        elif (
            _OWN_INCREMENT in self.__dict__ and self.__dict__[_OWN_INCREMENT] is self.cqrs_revision
        ):
            # Saved already in this transaction: write the value, do not increment twice. An
            # expression the caller set (``F('cqrs_revision') + 1`` with ``update_fields``) is
            # theirs to save, as django-cqrs saves it.
            self.refresh_from_db(fields=["cqrs_revision"], using=using)
        self.save_tracked_fields()
        staged = self._stages_in_transaction(using, kwargs)
        if staged:
            # A create that is the transaction's first message carries its message row (see
            # controller.staging); an update's statement only reads the revision back.
            self.__dict__[staging.REQUESTED] = True if self._state.adding else staging.REVISION_ONLY
            try:
                super().save(*args, **kwargs)
            finally:
                self.__dict__.pop(staging.REQUESTED, None)
                self.__dict__.pop(staging.STAGED_ID, None)
        else:
            super().save(*args, **kwargs)
        tracker = getattr(type(self), "_cqrs_tracker", None)
        if tracker is not None:
            tracker.snapshot(self)

    def _stages_in_transaction(self, using: str, options: dict[str, Any]) -> bool:
        # An update reads its incremented revision back in the same statement; its message
        # is stored with the block's other messages just before the commit (see
        # controller.precommit), in the order of the block. A create's INSERT carries its
        # message row when no commit hook precedes it in the transaction: the rows written at
        # the commit come after it, so the block's order holds.
        connection = transaction.get_connection(using)
        return (
            publishing.OUTBOX not in self.__dict__
            and self.CQRS_PRODUCE
            and connection.in_atomic_block
            and (not self._state.adding or not connection.run_on_commit)
            and publishing.mode() == "outbox"
            and not is_suppressed(self.CQRS_ID)
            and staging.applies(self, using, options)
        )

    # Private Django hooks: a staged save (see controller.staging) only happens when
    # staging.hooks_known() found the signatures in staging.HOOKS; otherwise both pass through.
    def _do_update(self, *args: Any, **kwargs: Any) -> Any:
        requested = self.__dict__.get(staging.REQUESTED)
        if requested:
            call = staging.hook_arguments("_do_update", args, kwargs)
            if call["values"]:
                return staging.update(
                    self,
                    call["base_qs"],
                    call["using"],
                    call["pk_val"],
                    call["values"],
                    message=requested != staging.REVISION_ONLY,
                )
        return super()._do_update(*args, **kwargs)  # type: ignore[misc]

    def _do_insert(self, *args: Any, **kwargs: Any) -> Any:
        if self.__dict__.pop(staging.REQUESTED, False) is True:
            call = staging.hook_arguments("_do_insert", args, kwargs)
            return staging.insert(
                self,
                call["manager"],
                call["using"],
                call["fields"],
                call["returning_fields"],
                call["raw"],
            )
        return super()._do_insert(*args, **kwargs)  # type: ignore[misc]

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self.__dict__.pop(_OWN_INCREMENT, None)
        tracker = getattr(type(self), "_cqrs_tracker", None)
        if tracker is not None:
            # Reloaded values are the new "previous" ones, as after a load.
            fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
            tracker.snapshot(self, fields)

    def _take_expression_values(self, using: str | None, source: Any = None) -> None:
        """Replace ``F()`` values left by a save with what the database holds: read from
        ``source`` (the same row, fetched already) or from the database."""
        expressions = [
            f.attname
            for f in self._meta.concrete_fields
            if isinstance(self.__dict__.get(f.attname), BaseExpression)
        ]
        if not expressions:
            return
        if source is None:
            self.refresh_from_db(fields=expressions, using=using)
            return
        for attname in expressions:
            self.__dict__[attname] = getattr(source, attname)
        self.__dict__.pop(_OWN_INCREMENT, None)
        tracker = getattr(type(self), "_cqrs_tracker", None)
        if tracker is not None:
            tracker.snapshot(self, expressions)

    def save_tracked_fields(self) -> None:
        tracker = getattr(type(self), "_cqrs_tracker", None)
        if tracker is not None and self.is_initial_cqrs_save:
            self._cqrs_tracked_data = tracker.changed(self)

    def get_tracked_fields_data(self) -> dict[str, Any] | None:
        """Previous values of the tracked fields changed by the last save, or None."""
        if getattr(type(self), "_cqrs_tracker", None) is None:
            return None
        return getattr(self, "_cqrs_tracked_data", None)

    # -- serialization ---------------------------------------------------------------------
    @classmethod
    def _cqrs_serializer_class(cls) -> Any:
        cached = cls.__dict__.get("_cqrs_serializer_cls")
        if cached is None:
            cached = import_from_setting(cls.CQRS_SERIALIZER, f"{cls.__qualname__}.CQRS_SERIALIZER")
            cls._cqrs_serializer_cls = cached  # type: ignore[attr-defined]
        return cached

    def to_cqrs_dict(self, using: str | None = None, sync: bool = False) -> dict[str, Any]:
        """The instance as ``instance_data``: its fields, or ``CQRS_SERIALIZER(instance).data``."""
        if self.CQRS_SERIALIZER:
            instance = self
            if sync:
                self._take_expression_values(using)
            else:
                manager = type(self)._default_manager.using(using)
                instance = self.relate_cqrs_serialization(manager.all()).get(pk=self.pk)
                self._take_expression_values(using, source=instance)
            data = to_wire(dict(self._cqrs_serializer_class()(instance).data))
            # Every replica needs these two, whatever the serializer returns (as in django-cqrs).
            data["cqrs_revision"] = instance.cqrs_revision
            data["cqrs_updated"] = str(instance.cqrs_updated)
            return data
        self._take_expression_values(using)
        chosen = None if self.CQRS_FIELDS == ALL_BASIC_FIELDS else set(self.CQRS_FIELDS)
        data = {}
        for field in self._meta.concrete_fields:
            if chosen is not None and field.name not in chosen:
                continue
            data[field.name] = to_wire(field.value_from_object(self))
        data["cqrs_revision"] = self.cqrs_revision
        data["cqrs_updated"] = str(self.cqrs_updated)
        return data

    # -- sync and hooks ----------------------------------------------------------------------
    def cqrs_sync(self, using: str | None = None, queue: str | None = None) -> bool:
        """Publish the instance again as a SYNC (to one replica ``queue``, or to all)."""
        if self._state.adding:
            return False
        if not self.CQRS_SERIALIZER:
            try:
                self.refresh_from_db(using=using)
            except type(self).DoesNotExist:
                return False
        using = using or router.db_for_write(type(self), instance=self)
        publishing.saved(self, using, sync=True, queue=queue)
        return True

    def is_sync_instance(self) -> bool:
        """Override to publish only some instances (the revision counts regardless)."""
        return True

    def get_cqrs_meta(self, **kwargs: Any) -> dict[str, Any]:
        """Metadata for the payload's ``meta`` (default: ``master.meta_function`` or ``{}``)."""
        return get_meta(self, **kwargs)

    @classmethod
    def relate_cqrs_serialization(cls, queryset: models.QuerySet) -> models.QuerySet:
        """Add ``select_related``/``prefetch_related`` the serializer needs."""
        return queryset

    def get_custom_cqrs_delete_data(self) -> dict[str, Any] | None:
        """Extra data sent as ``instance_data['custom']`` with a DELETE."""
        return None

    @classmethod
    def call_post_bulk_create(cls, instances: list[Any], using: str | None = None) -> None:
        post_bulk_create.send(cls, instances=instances, using=using)

    @classmethod
    def call_post_update(cls, instances: list[Any], using: str | None = None) -> None:
        post_update.send(cls, instances=instances, using=using)


class MasterMixin(RawMasterMixin, metaclass=MasterMeta):
    """Master model: its changes are published to the replicas on commit."""

    class Meta:
        abstract = True


class RawReplicaMixin:
    """A replica that is not a Django model: implement ``cqrs_save`` and ``cqrs_delete``."""

    CQRS_ID: ClassVar[str | None] = None
    CQRS_NO_DB_OPERATIONS: ClassVar[bool] = True
    CQRS_META: ClassVar[bool] = False
    #: Apply SYNC messages only when they were sent to this service's queue.
    CQRS_ONLY_DIRECT_SYNCS: ClassVar[bool] = False

    @classmethod
    def cqrs_save(cls, master_data: dict, **kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def cqrs_delete(cls, master_data: dict, **kwargs: Any) -> bool:
        raise NotImplementedError

    @classmethod
    def should_retry_cqrs(cls, current_retry: int, exception: BaseException | None = None) -> bool:
        """Retry a failed message? Default: fewer than ``CQRS_MAX_RETRIES`` retries so far."""
        max_retries = replica_setting("MAX_RETRIES")
        return max_retries is None or current_retry < max_retries

    @classmethod
    def get_cqrs_retry_delay(cls, current_retry: int) -> float:
        """Seconds before the next attempt (default: ``CQRS_RETRY_DELAY``)."""
        return replica_setting("RETRY_DELAY")


class ReplicaMixin(RawReplicaMixin, models.Model, metaclass=ReplicaMeta):
    """Replica model, kept up to date from the master's messages (treat it as read-only)."""

    CQRS_ID: ClassVar[str | None] = None
    #: ``{master field: replica field}``; only mapped keys are applied.
    CQRS_MAPPING: ClassVar[dict[str, str] | None] = None
    #: Skip the default data checks; implement ``cqrs_create``/``cqrs_update``.
    CQRS_CUSTOM_SERIALIZATION: ClassVar[bool] = False
    #: Kept for compatibility: rows are always locked where the database supports it.
    CQRS_SELECT_FOR_UPDATE: ClassVar[bool] = False
    CQRS_NO_DB_OPERATIONS: ClassVar[bool] = False
    CQRS_META: ClassVar[bool] = False

    cqrs_revision = models.IntegerField()
    cqrs_updated = models.DateTimeField()

    objects = models.Manager()
    cqrs = ReplicaManager()

    class Meta:
        abstract = True

    @classmethod
    def cqrs_save(  # type: ignore[override]
        cls,
        master_data: dict[str, Any],
        previous_data: dict[str, Any] | None = None,
        sync: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """Create or update from master data, honouring revisions (do not override)."""
        return cls.cqrs.save_instance(master_data, previous_data, sync, meta)

    @classmethod
    def cqrs_create(
        cls,
        sync: bool,
        mapped_data: dict[str, Any],
        previous_data: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """Create the instance from mapped data (override for custom serialization)."""
        return cls._default_manager.create(**mapped_data)

    def cqrs_update(
        self,
        sync: bool,
        mapped_data: dict[str, Any],
        previous_data: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """Update the instance from mapped data (override for custom serialization)."""
        for key, value in mapped_data.items():
            setattr(self, key, value)
        self.save()
        return self

    @classmethod
    def cqrs_delete(  # type: ignore[override]
        cls, master_data: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> bool:
        """Delete the instance named by ``master_data['id']`` (True even if nothing was there)."""
        return cls.cqrs.delete_instance(master_data)

    @classmethod
    def _cqrs_applies_in_bulk(cls) -> bool:
        """Can a batch be applied with bulk statements, doing what ``cqrs_save`` and
        ``cqrs_delete`` would? Not when the model overrides them or its own save or delete,
        or has related objects (cascades)."""
        return (
            not cls.CQRS_NO_DB_OPERATIONS
            and not cls.CQRS_CUSTOM_SERIALIZATION
            and _function(cls.cqrs_save) is _function(ReplicaMixin.cqrs_save)
            and _function(cls.cqrs_create) is _function(ReplicaMixin.cqrs_create)
            and _function(cls.cqrs_delete) is _function(ReplicaMixin.cqrs_delete)
            and cls.cqrs_update is ReplicaMixin.cqrs_update
            and cls.save is models.Model.save
            and cls.delete is models.Model.delete
            and not cls._meta.related_objects
        )


def _function(method: Any) -> Any:
    return getattr(method, "__func__", method)
