from __future__ import annotations

from collections.abc import Iterator

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.sync_registry import model_syncs
from django_messaging.kafka.topic import TopicConsumer


class Topics:
    """The topics a consumer handles: ``Topics(Topic1(), Topic2())``.

    On a consumer class they also include the topics of the ``ModelSync`` Python sinks that
    run on that class (``PythonSink(consumer=...)`` or ``MODEL_SYNC_CONSUMER``), after the
    ones given here. A subclass that does not set ``topics`` gets its own copy, so the sinks
    of the parent class do not run on it.
    """

    def __init__(self, *topic_consumers: TopicConsumer) -> None:
        self._own = topic_consumers
        self._owner: type | None = None
        self._match: dict[str, TopicConsumer] = {}

    def __set_name__(self, owner: type, name: str) -> None:
        self._owner = owner

    def bound_to(self, owner: type) -> Topics:
        """These topics on another consumer class (a subclass that did not set its own)."""
        copy = Topics(*self._own)
        copy._owner = owner
        return copy

    @property
    def _topics(self) -> tuple[TopicConsumer, ...]:
        if self._owner is None:
            return self._own
        synced = model_syncs.topics_for(self._owner)
        return (*self._own, *synced) if synced else self._own

    def get(self, topic_name: str) -> TopicConsumer:
        """The topic consumer of a message's topic (first match, cached)."""
        found = self._match.get(topic_name)
        if found is not None:
            return found
        for topic in self._topics:
            if topic.matches(topic_name):
                self._match[topic_name] = topic
                return topic
        raise DjangoKafkaError(f"No topic registered for {topic_name!r}.")

    def get_retryable(self, blocking: bool = False) -> list[TopicConsumer]:
        result = []
        for topic in self._topics:
            settings = topic.get_retry_settings()
            if settings is not None and settings.blocking == blocking:
                result.append(topic)
        return result

    @property
    def names(self) -> list[str]:
        return [topic.name for topic in self._topics]

    def __iter__(self) -> Iterator[TopicConsumer]:
        return iter(self._topics)

    def __len__(self) -> int:
        return len(self._topics)
