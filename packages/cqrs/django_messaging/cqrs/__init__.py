"""CQRS master to replica model replication for Django over RabbitMQ."""

__version__ = "0.1.0"
