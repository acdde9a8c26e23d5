"""Models the cqrs tests and the demo use: masters and their replicas in one project.

The same process is master and replica here; tests run the replica side as a separate
``cqrs_consume`` process against the same database.
"""

from __future__ import annotations

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from django_messaging.cqrs.metas import MasterMeta, ReplicaMeta
from django_messaging.cqrs.mixins import (
    MasterMixin,
    RawMasterMixin,
    RawReplicaMixin,
    ReplicaMixin,
)


# -- masters -------------------------------------------------------------------------------
class Product(MasterMixin):
    CQRS_ID = "product"
    CQRS_TRACKED_FIELDS = ["name", "price"]

    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    active = models.BooleanField(default=True)
    day = models.DateField(null=True)
    at = models.TimeField(null=True)
    duration = models.DurationField(null=True)
    blob = models.BinaryField(null=True)


class UuidItem(MasterMixin):
    CQRS_ID = "uuid_item"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=200)


class Publisher(models.Model):
    name = models.CharField(max_length=200)


class Author(MasterMixin):
    CQRS_ID = "author"
    CQRS_SERIALIZER = "tests.project.cqrs_app.serializers.AuthorSerializer"

    name = models.CharField(max_length=200)
    publisher = models.ForeignKey(Publisher, null=True, on_delete=models.SET_NULL)

    @classmethod
    def relate_cqrs_serialization(cls, queryset):
        return queryset.select_related("publisher")


class Article(MasterMixin):
    """A serializer that returns only the model's own fields (no revision pair)."""

    CQRS_ID = "article"
    CQRS_SERIALIZER = "tests.project.cqrs_app.serializers.ArticleSerializer"

    title = models.CharField(max_length=200)


class Tracked(MasterMixin):
    """Every field tracked, a foreign key and a generic one among them."""

    CQRS_ID = "tracked"
    CQRS_TRACKED_FIELDS = "__all__"

    char_field = models.CharField(max_length=200, null=True)
    date_field = models.DateField(null=True)
    datetime_field = models.DateTimeField(null=True)
    content_type = models.ForeignKey(ContentType, null=True, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField(null=True)
    content_object = GenericForeignKey("content_type", "object_id")


class Chosen(MasterMixin):
    CQRS_ID = "chosen"
    CQRS_FIELDS = ["id", "name"]

    name = models.CharField(max_length=200)
    secret = models.CharField(max_length=200, default="")


class Filtered(MasterMixin):
    CQRS_ID = "filtered"

    name = models.CharField(max_length=200)

    def is_sync_instance(self) -> bool:
        return len(str(self.name)) > 2


class Poison(MasterMixin):
    CQRS_ID = "poison"

    name = models.CharField(max_length=200)


class DirectOnly(MasterMixin):
    CQRS_ID = "direct_only"

    name = models.CharField(max_length=200)


class RawBase(RawMasterMixin):
    CQRS_ID = "raw_base"

    name = models.CharField(max_length=200)


class RawProxy(RawBase):
    class Meta:
        proxy = True


MasterMeta.register(RawBase)


# -- replicas ------------------------------------------------------------------------------
class ProductRef(ReplicaMixin):
    CQRS_ID = "product"

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=20, decimal_places=6)
    active = models.BooleanField(default=True)
    day = models.DateField(null=True)
    at = models.TimeField(null=True)
    duration = models.DurationField(null=True)
    blob = models.BinaryField(null=True)


class UuidItemRef(ReplicaMixin):
    CQRS_ID = "uuid_item"

    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)


class AuthorRef(ReplicaMixin):
    """Custom serialization: the hooks build the row themselves."""

    CQRS_ID = "author"
    CQRS_CUSTOM_SERIALIZATION = True
    CQRS_META = True

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    publisher_name = models.CharField(max_length=200, default="")
    meta_seen = models.JSONField(null=True)

    @classmethod
    def cqrs_create(cls, sync, mapped_data, previous_data=None, meta=None):
        return cls.objects.create(
            id=mapped_data["id"],
            name=mapped_data["name"],
            publisher_name=(mapped_data.get("publisher") or {}).get("name", ""),
            cqrs_revision=mapped_data["cqrs_revision"],
            cqrs_updated=mapped_data["cqrs_updated"],
            meta_seen=meta,
        )

    def cqrs_update(self, sync, mapped_data, previous_data=None, meta=None):
        self.name = mapped_data["name"]
        self.publisher_name = (mapped_data.get("publisher") or {}).get("name", "")
        self.cqrs_revision = mapped_data["cqrs_revision"]
        self.cqrs_updated = mapped_data["cqrs_updated"]
        self.meta_seen = meta
        self.save()
        return self


class ArticleRef(ReplicaMixin):
    CQRS_ID = "article"

    id = models.BigIntegerField(primary_key=True)
    title = models.CharField(max_length=200)


class ChosenRef(ReplicaMixin):
    CQRS_ID = "chosen"
    CQRS_MAPPING = {"id": "id", "name": "title"}

    id = models.BigIntegerField(primary_key=True)
    title = models.CharField(max_length=200)


class FilteredRef(ReplicaMixin):
    CQRS_ID = "filtered"

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)


class PoisonRef(ReplicaMixin):
    """Fails on purpose for names starting with 'poison' (to test retries and dead letters)."""

    CQRS_ID = "poison"

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)

    @classmethod
    def cqrs_create(cls, sync, mapped_data, previous_data=None, meta=None):
        if str(mapped_data.get("name", "")).startswith("poison"):
            raise RuntimeError(f"refusing {mapped_data['name']!r}")
        return super().cqrs_create(sync, mapped_data, previous_data, meta)


class DirectOnlyRef(ReplicaMixin):
    CQRS_ID = "direct_only"
    CQRS_ONLY_DIRECT_SYNCS = True

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)


class AuditTrail(RawReplicaMixin):
    """A replica that is not a model (``CQRS_NO_DB_OPERATIONS``): it records what it is sent."""

    CQRS_ID = "audit_trail"
    CQRS_META = True
    received: list = []

    @classmethod
    def cqrs_save(cls, master_data, previous_data=None, sync=False, meta=None):
        cls.received.append(("SYNC" if sync else "SAVE", master_data["id"], meta))
        return True

    @classmethod
    def cqrs_delete(cls, master_data, meta=None):
        cls.received.append(("DELETE", master_data["id"], meta))
        return True


ReplicaMeta.register(AuditTrail)


# -- wire compatibility with django-cqrs (tests/cqrs/test_compat.py) -----------------------------
class CompatItem(MasterMixin):
    """Replicated to a django-cqrs service."""

    CQRS_ID = "compat_to_ref"

    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    day = models.DateField(null=True)


class CompatProductRef(ReplicaMixin):
    """Replica of a django-cqrs master's model."""

    CQRS_ID = "compat_to_ours"

    id = models.IntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    day = models.DateField(null=True)
