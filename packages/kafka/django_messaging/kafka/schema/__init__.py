"""Schemas derived from Django models: :class:`~django_messaging.kafka.schema.avro.AvroSchema`."""
