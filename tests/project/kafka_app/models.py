"""Models the kafka tests and the demo use."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models

from django_messaging.kafka.connect.models import (
    KafkaConnectSkipModel,
    KafkaConnectSkipQueryset,
)


class Category(models.Model):
    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=100)


class Product(models.Model):
    """Synced from a topic: the id comes from the message."""

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL)
    released = models.DateField(null=True, blank=True)


class Customer(models.Model):
    id = models.BigIntegerField(primary_key=True)
    first_name = models.CharField(max_length=100)
    email = models.CharField(max_length=200, blank=True, default="")


class Handled(models.Model):
    """One row per message a test handler saw (at-least-once and transaction checks)."""

    topic = models.CharField(max_length=250)
    value = models.CharField(max_length=250)


# Kafka Connect


class SkipItem(KafkaConnectSkipModel):
    """A row a change-data-capture connector would publish unless ``kafka_skip`` is set."""

    name = models.CharField(max_length=100, unique=True)
    counter = models.IntegerField(default=0)


class SkipChild(KafkaConnectSkipModel):
    """Deleted by cascade with its item: its ``kafka_skip`` must be written too."""

    item = models.ForeignKey(SkipItem, on_delete=models.CASCADE, related_name="children")
    label = models.CharField(max_length=100, default="")


class SkipUserManager(BaseUserManager.from_queryset(KafkaConnectSkipQueryset)):  # type: ignore[misc]
    def create_user(self, email: str, password: str | None = None) -> "SkipUser":
        user = self.model(email=self.normalize_email(email))
        user.set_password(password)
        user.save(using=self._db)
        return user


class SkipUser(KafkaConnectSkipModel, AbstractBaseUser):
    """The documented custom-user example: a manager built from ``KafkaConnectSkipQueryset``."""

    email = models.EmailField(unique=True)

    USERNAME_FIELD = "email"
    objects = SkipUserManager()


class ChangeLog(models.Model):
    """What a change-data-capture connector would read: filled by database triggers in tests."""

    table = models.CharField(max_length=100)
    op = models.CharField(max_length=1)
    row_id = models.BigIntegerField()
    kafka_skip = models.BooleanField()


# Model sync


class SyncFields(models.Model):
    """A column of each type the Avro schema of a model maps."""

    number = models.CharField(max_length=20)
    quantity = models.IntegerField(default=1)
    big = models.BigIntegerField(null=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    paid = models.BooleanField(default=False)
    ratio = models.FloatField(null=True)
    ordered_on = models.DateField(null=True)
    created_at = models.DateTimeField()
    at_time = models.TimeField(null=True)
    ref = models.UUIDField(null=True)
    wait = models.DurationField(null=True)
    meta = models.JSONField(default=dict)
    blob = models.BinaryField(null=True)
    status = models.CharField(
        max_length=10, choices=[("new", "New"), ("done", "Done")], default="new"
    )
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        abstract = True


class SyncOrder(SyncFields):
    """Published by a ModelSync source."""


class SyncOrderReplica(SyncFields):
    """Written by a ModelSync sink: the id comes from the message."""

    id = models.BigIntegerField(primary_key=True)


class SyncLine(models.Model):
    """Needs its order (a required foreign key: the sink waits for the order's row)."""

    id = models.BigIntegerField(primary_key=True)
    order = models.ForeignKey(SyncOrderReplica, on_delete=models.CASCADE)
    sku = models.CharField(max_length=20, db_column="sku_code")
