"""Settings for relay and subscriber processes that the tests start: the test project, pointed
at the test database the pytest run created."""

from tests.project.settings import *  # noqa: F403
from tests.project.settings import DATABASES

DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]
DATABASES["eventstore"]["NAME"] = DATABASES["eventstore"]["TEST"]["NAME"]
