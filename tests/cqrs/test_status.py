"""``messaging_status`` on CQRS: pending master messages (database) and the replica's queue and
dead letter queue depths (RabbitMQ, passive declares)."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable
from io import StringIO
from typing import Any

import pika
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from django_messaging.cqrs.models import PendingMessage

pytestmark = pytest.mark.django_db


def _status(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("messaging_status", "--json", "--package", "cqrs", *args, stdout=out)
    return json.loads(out.getvalue())


def _cqrs(**changes: Any) -> dict[str, Any]:
    return {**settings.MESSAGING, "CQRS": {**settings.MESSAGING["CQRS"], **changes}}


def test_pending_messages_and_their_age(rabbitmq_url: str) -> None:
    PendingMessage.objects.create(cqrs_id="a", signal_type="SAVE", instance_pk="1", body="{}")
    PendingMessage.objects.create(cqrs_id="a", signal_type="SAVE", instance_pk="2", body="{}")
    PendingMessage.objects.filter(instance_pk="1").update(
        created=timezone.now() - dt.timedelta(seconds=120)
    )
    figures = {f["metric"]: f["value"] for f in _status()["figures"]}
    assert figures["cqrs_pending"] == 2
    assert 120 <= figures["cqrs_oldest_pending_age_seconds"] < 180
    with pytest.raises(CommandError) as raised:
        call_command(
            "messaging_status", "--package", "cqrs", "--max-backlog", "1", stdout=StringIO()
        )
    assert raised.value.returncode == 1
    assert "cqrs_pending = 2 > 1" in str(raised.value)


def test_replica_queue_and_dead_letters(
    rabbitmq_url: str, unique_name: Callable[[str], str]
) -> None:
    queue = unique_name("status")
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, arguments={"x-expires": 600000})
        for i in range(3):
            channel.basic_publish("", queue, f"m{i}".encode())
        with override_settings(MESSAGING=_cqrs(queue=queue)):
            figures = {f["metric"]: (f["labels"], f["value"]) for f in _status()["figures"]}
            assert figures["cqrs_replica_queue_depth"] == ({"queue": queue}, 3)
            # Its dead letter queue was never declared: nothing waits there, nothing is created.
            assert figures["cqrs_dead_letters"] == ({"queue": f"dead_letter_{queue}"}, 0)
            with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                connection.channel().queue_declare(f"dead_letter_{queue}", passive=True)
            with pytest.raises(CommandError) as raised:
                call_command(
                    "messaging_status", "--package", "cqrs", "--max-lag", "2", stdout=StringIO()
                )
            assert raised.value.returncode == 1
    finally:
        if connection.is_open:
            connection.channel().queue_delete(queue)
            connection.close()


def test_unreachable_broker_exits_3() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = StringIO()
    url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    with override_settings(MESSAGING=_cqrs(url=url)), pytest.raises(CommandError) as raised:
        call_command("messaging_status", "--package", "cqrs", "--timeout", "1", stdout=out)
    assert raised.value.returncode == 3
    # Where it was looked for, the password left out.
    assert f"RabbitMQ at amqp://guest:********@127.0.0.1:{port}/%2F" in str(raised.value)
    # The database figures are still there.
    assert "cqrs_pending" in out.getvalue()
