"""Models the kafka tests and the demo use."""

from django.db import models


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
