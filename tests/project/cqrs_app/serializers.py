"""A serializer in the shape ``CQRS_SERIALIZER`` expects (``Serializer(instance).data``)."""

from __future__ import annotations


class AuthorSerializer:
    def __init__(self, instance):
        self.instance = instance

    @property
    def data(self) -> dict:
        author = self.instance
        publisher = author.publisher
        return {
            "id": author.pk,
            "name": author.name,
            "publisher": {"id": publisher.pk, "name": publisher.name} if publisher else None,
            "cqrs_revision": author.cqrs_revision,
            "cqrs_updated": str(author.cqrs_updated),
        }


class ArticleSerializer:
    """Like a DRF ``ModelSerializer`` with ``fields = ["id", "title"]``: the model's own fields only."""

    def __init__(self, instance):
        self.instance = instance

    @property
    def data(self) -> dict:
        return {"id": self.instance.pk, "title": self.instance.title}
