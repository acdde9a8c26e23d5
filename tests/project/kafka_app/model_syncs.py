"""Model syncs of the test project, discovered by ``autodiscover()`` like a user's
``model_syncs.py``. The source joins a connector that is not registered, so it publishes
nothing unless a test asks for that connector's config."""

from django_messaging.kafka.connect.connector import Connector
from django_messaging.kafka.models.model_sync import DbzPostgresSource, ModelSync
from tests.project.kafka_app.models import SyncLine


class ProjectCdcSource(Connector):
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "topic.prefix": "project",
    }


class ProjectLineSync(ModelSync):
    model = SyncLine
    source = DbzPostgresSource(connector=f"{__name__}.ProjectCdcSource")
