from typing import Any

from django_messaging.core.exceptions import MessagingError


class DjangoKafkaError(MessagingError):
    """Any error of django_messaging.kafka; ``context`` carries the object it concerns."""

    def __init__(self, *args: Any, context: Any = None) -> None:
        super().__init__(*args)
        self.context = context
