"""Subscriber callbacks the tests (and the subscribe command in a subprocess) use."""

from __future__ import annotations

from django.db import transaction

from django_messaging.outbox.payloads import Payload
from tests.project.outbox_app.models import Order

calls: list[Payload] = []


def store_order(payload: Payload) -> None:
    """The documented callback: business write and ``payload.save()`` in one transaction."""
    calls.append(payload)
    with transaction.atomic():
        Order.objects.create(number=str(payload.body.get("number", payload.body.get("id"))))
        payload.save()


def always_raises(payload: Payload) -> None:
    calls.append(payload)
    raise ValueError("cannot handle this")


def forgets_to_save(payload: Payload) -> None:
    calls.append(payload)


def nacks(payload: Payload) -> None:
    calls.append(payload)
    payload.nack()


def fails_once_after_save(payload: Payload) -> None:
    """First call saves, then fails inside the transaction: nothing may be kept or acked."""
    calls.append(payload)
    with transaction.atomic():
        Order.objects.create(number=str(payload.body["number"]))
        payload.save()
        if len(calls) == 1:
            raise RuntimeError("transient failure after save")


def slow_first_time(payload: Payload) -> None:
    """Saves, then (first delivery only) hangs inside the transaction until killed."""
    import pathlib
    import time

    marker = pathlib.Path(payload.body["marker"])
    with transaction.atomic():
        Order.objects.create(number=str(payload.body["number"]))
        payload.save()
        if not marker.exists():
            marker.write_text("in callback")
            time.sleep(60)


def waits_for_go(payload: Payload) -> None:
    """Says it is running (file ``running``), waits for the file ``go``, then stores the order:
    a test cuts the database in between."""
    import pathlib
    import time

    running, go = pathlib.Path(payload.body["running"]), pathlib.Path(payload.body["go"])
    running.write_text("in callback")
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    store_order(payload)


def fails_in_sql(payload: Payload) -> None:
    """A query the database refuses, quoting the SQL and a value from the message."""
    from django.db import connection

    calls.append(payload)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT no_such_column FROM messaging_outbox_received WHERE msg_id = "
            f"'{payload.body['secret']}'"
        )


def raises_on_three(payload: Payload) -> None:
    """The documented callback, except that message ``3`` always fails after its insert."""
    calls.append(payload)
    with transaction.atomic():
        Order.objects.create(number=str(payload.body["number"]))
        payload.save()
        if payload.body["number"] == "3":
            raise ValueError("cannot handle number 3")


def swallows_rollback_on_two(payload: Payload) -> None:
    """Message ``2`` saves, then its own transaction rolls back and the callback returns."""
    calls.append(payload)
    try:
        with transaction.atomic():
            Order.objects.create(number=str(payload.body["number"]))
            payload.save()
            if payload.body["number"] == "2":
                raise ValueError("rolled back on purpose")
    except ValueError:
        pass


def times_out_while_another_subscriber_saves(payload: Payload) -> None:
    """First call: another subscriber of the queue records the message (its own connection,
    committed) while this callback's query hits PostgreSQL's statement timeout."""
    import threading

    from django.db import connection

    from django_messaging.outbox.models import Received

    calls.append(payload)
    msg_id, queue = payload.message.msg_id, payload.message.queue

    def other_subscriber() -> None:
        try:
            Received.objects.create(msg_id=msg_id, queue=queue, body={}, headers={})
        finally:
            connection.close()

    thread = threading.Thread(target=other_subscriber)
    thread.start()
    thread.join()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 10")
        cursor.execute("SELECT pg_sleep(1)")
