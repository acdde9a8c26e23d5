"""Models the outbox tests and the demo use."""

from __future__ import annotations

import os
from typing import Any

from django.db import models

from django_messaging.outbox.decorators import Config, publish

#: The broker is shared by test runs side by side: each run's models publish to destinations of
#: its own, named after its database.
RUN = os.environ.get("MESSAGING_TEST_DB_NAME", "messaging")
PLAIN = f"/topic/outbox_test_plain_{RUN}"
VERSIONED = f"/topic/outbox_test_versioned_{RUN}"
FIELDS = f"/topic/outbox_test_fields_{RUN}"
SERIALIZER = f"/topic/outbox_test_serializer_{RUN}"
MULTI_1 = f"/topic/outbox_test_multi_1_{RUN}"
MULTI_2 = f"/topic/outbox_test_multi_2_{RUN}"


@publish([Config(destination=PLAIN)])
class PlainModel(models.Model):
    field_one = models.CharField(max_length=100)
    field_two = models.CharField(max_length=100)


@publish([Config(destination=VERSIONED, version="v1")])
class VersionedModel(models.Model):
    field_one = models.CharField(max_length=100)
    field_two = models.CharField(max_length=100)


@publish([Config(destination=FIELDS, fields=["field_one"])])
class FieldsModel(models.Model):
    field_one = models.CharField(max_length=100)
    field_two = models.CharField(max_length=100)


@publish([Config(destination=SERIALIZER, serializer="my_serializer")])
class SerializerModel(models.Model):
    field_one = models.CharField(max_length=100)
    field_two = models.CharField(max_length=100)

    def my_serializer(self) -> dict[str, Any]:
        return {"id": self.id, "one": self.field_one, "two": self.field_two}


@publish(
    [
        Config(destination=MULTI_1, serializer="my_serializer_1"),
        Config(destination=MULTI_2, serializer="my_serializer_2"),
    ]
)
class MultiModel(models.Model):
    field_one = models.CharField(max_length=100)
    field_two = models.CharField(max_length=100)

    def my_serializer_1(self) -> dict[str, Any]:
        return {"id": self.id, "one": self.field_one}

    def my_serializer_2(self) -> dict[str, Any]:
        return {"id": self.id, "two": self.field_two}


class PlainProxy(PlainModel):
    class Meta:
        proxy = True


class PlainChild(PlainModel):
    """Multi-table subclass of a decorated model."""

    extra = models.CharField(max_length=20, default="")


class Unpublished(models.Model):
    """Same shape, no decorator: the baseline of the save-overhead benchmark."""

    field_one = models.CharField(max_length=100)
    field_two = models.CharField(max_length=100)


class Order(models.Model):
    """What subscriber callbacks store, next to the Received row."""

    number = models.CharField(max_length=64)
