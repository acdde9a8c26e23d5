"""The test project's settings, with Kafka Connect at ``MESSAGING_TEST_CONNECT_HOST``.

Used by the tests that run ``python -m django kafka_connect`` as a subprocess.
"""

import os

from tests.project.settings import *  # noqa: F403
from tests.project.settings import MESSAGING

MESSAGING["KAFKA"]["CONNECT_HOST"] = os.environ.get("MESSAGING_TEST_CONNECT_HOST")
MESSAGING["KAFKA"]["CONNECT_RETRY"] = {"connect": 1, "read": 1, "status": 2, "backoff_factor": 0.01}
MESSAGING["KAFKA"]["CONNECT_REQUESTS_TIMEOUT"] = 5
