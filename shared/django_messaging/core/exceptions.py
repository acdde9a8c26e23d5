"""The one exception base class every django-messaging package derives from."""


class MessagingError(Exception):
    """Base class of every error raised by django-messaging."""


class ConfigurationError(MessagingError):
    """The MESSAGING settings are wrong; the message says which key and how to fix it."""


class SerializerError(MessagingError):
    """A value could not be serialized or deserialized, or a serializer name is unknown."""
