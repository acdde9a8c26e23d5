class DeadLetterHeader:
    """Headers of a dead-lettered message: the error and its traceback."""

    MESSAGE = "DEAD_LETTER_MESSAGE"
    DETAIL = "DEAD_LETTER_DETAIL"
