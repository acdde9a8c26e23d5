from typing import Any

from django_messaging.core.exceptions import MessagingError


class DjangoKafkaError(MessagingError):
    """Any error of django_messaging.kafka; ``context`` carries the object it concerns."""

    def __init__(self, *args: Any, context: Any = None) -> None:
        super().__init__(*args)
        self.context = context


class KafkaConnectError(DjangoKafkaError):
    """A Connect request failed; ``status_code`` is the HTTP status (``None``: no response)."""

    def __init__(self, *args: Any, status_code: int | None = None, context: Any = None) -> None:
        super().__init__(*args, context=context)
        self.status_code = status_code
