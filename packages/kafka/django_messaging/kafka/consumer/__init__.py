from django_messaging.kafka.consumer.consumer import Consumer
from django_messaging.kafka.consumer.topics import Topics

__all__ = ["Consumer", "Topics"]
