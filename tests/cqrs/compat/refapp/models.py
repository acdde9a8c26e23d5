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


class RefArticleSerializer:
    """Returns the model's own fields only: django-cqrs adds cqrs_revision and cqrs_updated."""

    def __init__(self, instance):
        self.instance = instance

    @property
    def data(self):
        return {"id": self.instance.pk, "title": self.instance.title}


class RefArticle(MasterMixin, models.Model):
    """A CQRS_SERIALIZER master replicated to our ArticleRef."""

    CQRS_ID = "article"
    CQRS_SERIALIZER = "refapp.models.RefArticleSerializer"

    title = models.CharField(max_length=200)


class RefArticleRef(ReplicaMixin, models.Model):
    """Replica of our CQRS_SERIALIZER master Article."""

    CQRS_ID = "article"

    id = models.IntegerField(primary_key=True)
    title = models.CharField(max_length=200)
