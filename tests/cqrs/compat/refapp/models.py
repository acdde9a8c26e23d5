from dj_cqrs.mixins import MasterMixin, ReplicaMixin
from django.db import models


class RefProduct(MasterMixin, models.Model):
    CQRS_ID = "compat_to_ours"

    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    day = models.DateField(null=True)


class RefItemRef(ReplicaMixin, models.Model):
    CQRS_ID = "compat_to_ref"

    id = models.IntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    day = models.DateField(null=True)
