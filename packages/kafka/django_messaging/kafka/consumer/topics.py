from __future__ import annotations

from collections.abc import Iterator

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic import TopicConsumer


class Topics:
    """The topics a consumer handles: ``Topics(Topic1(), Topic2())``."""

    def __init__(self, *topic_consumers: TopicConsumer) -> None:
        self._topics = topic_consumers
        self._match: dict[str, TopicConsumer] = {}

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
