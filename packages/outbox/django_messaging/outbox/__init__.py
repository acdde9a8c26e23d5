"""A transactional outbox for Django over STOMP (RabbitMQ): relay and idempotent subscriber."""

__version__ = "0.1.0"
