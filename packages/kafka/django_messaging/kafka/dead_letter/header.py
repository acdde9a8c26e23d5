from django_messaging.kafka.utils.message import Header


class DeadLetterHeader(Header):
    """Headers of a dead-lettered message: the error and its traceback.
    ``DeadLetterHeader.get(headers, DeadLetterHeader.MESSAGE)`` reads one."""

    MESSAGE = "DEAD_LETTER_MESSAGE"
    DETAIL = "DEAD_LETTER_DETAIL"
