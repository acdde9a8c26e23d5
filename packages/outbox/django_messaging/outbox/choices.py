"""Status of an outbox row (``Published``) and of a processed message (``Received``)."""

from django.db import models


class StatusChoice(models.IntegerChoices):
    FAILED = -1, "Failed"
    SCHEDULE = 1, "Scheduled"
    SUCCEEDED = 2, "Succeeded"
