"""Connectors of the test project, discovered by ``autodiscover()`` like a user's ``connectors.py``."""

from django_messaging.kafka import kafka
from django_messaging.kafka.connect.connector import Connector

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"


@kafka.connectors()
class ProjectFileSource(Connector):
    config = {
        "connector.class": FILE_SOURCE,
        "file": "/var/log/project.log",
        "topic": "project-log",
        "tasks.max": "1",
    }


@kafka.connectors()
class ProjectRetiredSource(Connector):
    mark_for_removal = True
    config = {"connector.class": FILE_SOURCE, "file": "/var/log/old.log", "topic": "old-log"}
