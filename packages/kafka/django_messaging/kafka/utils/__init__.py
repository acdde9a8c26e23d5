from django_messaging.kafka.utils.retry import retry

__all__ = ["retry"]
