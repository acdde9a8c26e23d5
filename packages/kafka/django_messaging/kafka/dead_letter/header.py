from django_messaging.kafka.utils.message import Header


class DeadLetterHeader(Header):
    """Headers of a dead-lettered message. ``DeadLetterHeader.get(headers,
    DeadLetterHeader.SUMMARY)`` reads one.

    ``SUMMARY`` and ``DETAIL`` hold the error and its traceback; ``MESSAGE_TOPIC``,
    ``MESSAGE_PARTITION`` and ``MESSAGE_OFFSET`` say where the dead-lettered copy was read
    (a retry topic when it failed there: the first topic is in ``ORIGINAL_TOPIC``), as
    django-kafka 0.9 and later write them. ``MESSAGE`` is django-kafka 0.5's name of
    ``SUMMARY``, still written.
    """

    MESSAGE = "DEAD_LETTER_MESSAGE"
    DETAIL = "DEAD_LETTER_DETAIL"
    SUMMARY = "DEAD_LETTER_SUMMARY"
    MESSAGE_TOPIC = "DEAD_LETTER_MESSAGE_TOPIC"
    MESSAGE_PARTITION = "DEAD_LETTER_MESSAGE_PARTITION"
    MESSAGE_OFFSET = "DEAD_LETTER_MESSAGE_OFFSET"
