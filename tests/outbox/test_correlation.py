"""``dop-correlation-id``: from the request (``CorrelationIdMiddleware`` or
``CORRELATION_ID_FUNCTION``) into the outbox rows on every write path, through the relay and
RabbitMQ, into the subscriber's callback and its log records."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import AsyncClient, override_settings
from django.urls import path
from django.utils.module_loading import import_string

from django_messaging.outbox.consumers import Consumer
from django_messaging.outbox.correlation import (
    CORRELATION_ID_HEADER,
    CorrelationIdFilter,
    correlation_id,
    get_correlation_id,
)
from django_messaging.outbox.decorators import NewRow, insert_outbox_rows
from django_messaging.outbox.durable import raw_headers
from django_messaging.outbox.factories import factory_producer
from django_messaging.outbox.models import Published
from django_messaging.outbox.payloads import Payload
from django_messaging.outbox.relay import Relay
from tests.outbox.helpers import drive, outbox_settings, topic
from tests.outbox.stomp_probe import send_raw
from tests.project.outbox_app.models import (
    PLAIN,
    MultiModel,
    PlainModel,
    SerializerModel,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def readme_example() -> dict:
    """The Python blocks of the README's "Correlation id" section, run."""
    text = (Path(__file__).resolve().parents[2] / "packages/outbox/README.md").read_text()
    start = text.index("\n### Correlation id\n")
    section = text[start : text.index("\n## ", start)]
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        exec(compile(block, "README.md", "exec"), namespace)
    return namespace


README = readme_example()
MIDDLEWARE = README["MIDDLEWARE"][-1]
LOGGING = README["LOGGING"]


# --- a view that saves a decorated model, as a project's would ---------------------------------


def save_plain(request):
    """One save in autocommit (on PostgreSQL: one statement with its outbox row), one inside
    ``atomic()`` (rows written just before the commit)."""
    marker = request.GET["marker"]
    PlainModel.objects.create(field_one=marker, field_two="autocommit")
    with transaction.atomic():
        PlainModel.objects.create(field_one=marker, field_two="atomic")
    return HttpResponse(get_correlation_id() or "")


def current_id(request):
    return HttpResponse(f"{get_correlation_id()} {request.correlation_id}")


urlpatterns = [path("save-plain/", save_plain), path("current-id/", current_id)]


def with_middleware():
    return override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[*settings.MIDDLEWARE, MIDDLEWARE])


# --- the subscriber side: what the callback sees, and its log records --------------------------


class Seen:
    """A callback that records the correlation ids it sees and logs one line per message
    through a handler with :class:`CorrelationIdFilter`."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.calls: list[tuple[dict, str | None, str | None]] = []
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(f"tests.correlation.{uuid.uuid4().hex}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        seen = self

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.records.append(record)
                seen.lines.append(self.format(record))

        # The README's LOGGING filter and formatter.
        self.handler = Collect()
        self.handler.addFilter(import_string(LOGGING["filters"]["correlation"]["()"])())
        self.handler.setFormatter(logging.Formatter(LOGGING["formatters"]["with_id"]["format"]))
        self.logger.addHandler(self.handler)

    def __call__(self, payload: Payload) -> None:
        with transaction.atomic():
            payload.save()
        if payload.body.get("field_one", payload.body.get("marker")) != self.marker:
            return  # another test's message on the run's shared destination
        self.calls.append((payload.body, payload.correlation_id, get_correlation_id()))
        self.logger.info("handled %s", payload.body.get("field_two"))

    def close(self) -> None:
        self.logger.removeHandler(self.handler)


@pytest.fixture
def seen(unique_name):
    made: list[tuple[Seen, Consumer]] = []

    def make(destination: str) -> tuple[Seen, Consumer]:
        callback = Seen(unique_name("m"))
        consumer = Consumer(callback, destination, unique_name("q"))
        consumer.start()
        made.append((callback, consumer))
        return callback, consumer

    yield make
    for callback, consumer in made:
        consumer.stop()
        callback.close()


def relay_until(consumer: Consumer, done, what: str) -> None:
    relay = Relay()
    relay.start()
    try:

        def step():
            consumer.run_once()
            return done()

        drive(relay, step, what=what)
    finally:
        relay.stop()


def test_request_id_reaches_the_callback_and_its_log_records(client, seen) -> None:
    callback, consumer = seen(PLAIN)
    request_id = f"req-{uuid.uuid4()}"
    with with_middleware():
        response = client.get(
            f"/save-plain/?marker={callback.marker}", headers={"X-Request-ID": request_id}
        )
    assert response.status_code == 200
    assert response.content.decode() == request_id  # the id while the view ran
    assert response["X-Request-ID"] == request_id
    rows = Published.objects.filter(destination=PLAIN, body__field_one=callback.marker)
    assert [r.headers[CORRELATION_ID_HEADER] for r in rows] == [request_id, request_id]

    relay_until(consumer, lambda: len(callback.calls) == 2, "both messages handled")
    assert sorted(body["field_two"] for body, _, _ in callback.calls) == ["atomic", "autocommit"]
    assert {(c, current) for _, c, current in callback.calls} == {(request_id, request_id)}
    assert [r.correlation_id for r in callback.records] == [request_id, request_id]
    assert sorted(line.split(" ", 3)[-1] for line in callback.lines) == [
        f"[{request_id}] {callback.logger.name} handled atomic",
        f"[{request_id}] {callback.logger.name} handled autocommit",
    ]
    assert get_correlation_id() is None  # nothing left behind after the callbacks


def test_request_without_header_gets_a_new_id(client) -> None:
    marker = uuid.uuid4().hex
    with with_middleware():
        response = client.get(f"/save-plain/?marker={marker}")
    made = response["X-Request-ID"]
    assert uuid.UUID(made).version == 4
    rows = Published.objects.filter(destination=PLAIN, body__field_one=marker)
    assert [r.headers[CORRELATION_ID_HEADER] for r in rows] == [made, made]


def test_middleware_under_asgi() -> None:
    client = AsyncClient()
    with with_middleware():
        response = async_to_sync(client.get)("/current-id/", headers={"X-Request-ID": "asgi-id"})
    assert response.content.decode() == "asgi-id asgi-id"
    assert response["X-Request-ID"] == "asgi-id"
    assert get_correlation_id() is None


def test_request_header_name_is_a_setting(client) -> None:
    marker = uuid.uuid4().hex
    with with_middleware(), outbox_settings(CORRELATION_ID_REQUEST_HEADER="X-Correlation-ID"):
        response = client.get(
            f"/save-plain/?marker={marker}",
            headers={"X-Correlation-ID": "from-proxy", "X-Request-ID": "not-this"},
        )
    assert response["X-Correlation-ID"] == "from-proxy"
    rows = Published.objects.filter(destination=PLAIN, body__field_one=marker)
    assert {r.headers[CORRELATION_ID_HEADER] for r in rows} == {"from-proxy"}


current_request_id: list[str | None] = [None]


def project_request_id() -> str | None:
    return current_request_id[0]


def test_correlation_id_function_gives_the_request_id(client) -> None:
    marker = uuid.uuid4().hex
    current_request_id[0] = "from-another-package"
    try:
        with outbox_settings(CORRELATION_ID_FUNCTION=f"{__name__}.project_request_id"):
            PlainModel.objects.create(field_one=marker, field_two="x")
            current_request_id[0] = None  # no current request: a new id per message
            PlainModel.objects.create(field_one=marker, field_two="y")
    finally:
        current_request_id[0] = None
    rows = {
        r.body["field_two"]: r.headers[CORRELATION_ID_HEADER]
        for r in Published.objects.filter(destination=PLAIN, body__field_one=marker)
    }
    assert rows["x"] == "from-another-package"
    assert uuid.UUID(rows["y"]).version == 4


def test_every_write_path_stores_the_id_and_raw_rows_keep_their_headers(unique_name) -> None:
    destination, _ = topic(unique_name)
    marker = unique_name("m")
    with correlation_id("cid-1"):
        PlainModel.objects.create(field_one=marker, field_two="autocommit")  # one statement
        SerializerModel.objects.create(field_one=marker, field_two="serializer")  # atomic
        with transaction.atomic():
            PlainModel.objects.create(field_one=marker, field_two="atomic")  # before commit
            MultiModel.objects.create(field_one=marker, field_two="multi")
        Published.objects.create(destination=destination, body={"manual": 1})
        insert_outbox_rows(connection.alias, [NewRow(destination, None, {"bulk": 1})])
        insert_outbox_rows(
            connection.alias,
            [NewRow(destination, None, None, payload=b"v", headers=raw_headers(b"k", []))],
        )
    # The test's database starts empty (transactional test): every row is this test's.
    by_kind = [(r.body, r.headers.get(CORRELATION_ID_HEADER)) for r in Published.objects.all()]
    assert len(by_kind) == 8, by_kind
    raw = [headers for body, headers in by_kind if body is None]
    assert raw == [None]  # the Kafka record's own headers, exactly
    assert {h for body, h in by_kind if body is not None} == {"cid-1"}


def test_without_a_request_each_message_gets_its_own_id() -> None:
    marker = uuid.uuid4().hex
    PlainModel.objects.create(field_one=marker, field_two="a")
    with transaction.atomic():
        PlainModel.objects.create(field_one=marker, field_two="b")
        PlainModel.objects.create(field_one=marker, field_two="c")
    MultiModel.objects.create(field_one=marker, field_two="d")  # two messages, one save
    ids = [r.headers[CORRELATION_ID_HEADER] for r in Published.objects.all()]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_caller_header_overrides_only_the_correlation_id(seen, unique_name) -> None:
    destination, _ = topic(unique_name)
    callback, consumer = seen(destination)
    forged = {
        CORRELATION_ID_HEADER: "caller-cid",
        "dop-msg-id": "forged-id",
        "dop-msg-type": "Forged",
        "dop-msg-destination": "/topic/elsewhere",
        "x-own": "kept",
    }
    with correlation_id("request-cid"):
        row = Published.objects.create(
            destination=destination, body={"marker": callback.marker}, headers=forged
        )
    relay_until(consumer, lambda: callback.calls, "the message handled")
    ((_, seen_id, current),) = callback.calls
    assert seen_id == current == "caller-cid"
    received = consumer_headers(row)
    assert received["dop-msg-id"] == str(row.id)
    assert received["dop-msg-type"] == "Published"
    assert received["dop-msg-destination"] == destination
    assert received["x-own"] == "kept"
    assert received[CORRELATION_ID_HEADER] == "caller-cid"


def consumer_headers(row: Published) -> dict:
    from django_messaging.outbox.models import Received

    return Received.objects.get(msg_id=str(row.id)).headers


def test_generated_headers_cannot_replace_a_stored_correlation_id(seen, unique_name) -> None:
    destination, _ = topic(unique_name)
    callback, consumer = seen(destination)
    with correlation_id("stored-cid"):
        Published.objects.create(destination=destination, body={"marker": callback.marker})
    with outbox_settings(GENERATE_HEADERS=f"{__name__}.headers_with_correlation"):
        relay_until(consumer, lambda: callback.calls, "the message handled")
    assert callback.calls[0][1] == "stored-cid"


def headers_with_correlation(message) -> dict:
    from django_messaging.outbox.headers import generate_headers

    return {**generate_headers(message), CORRELATION_ID_HEADER: "generated"}


def test_message_without_the_header_gets_a_new_id_in_the_callback(
    stomp_address, seen, unique_name
) -> None:
    destination, _ = topic(unique_name)
    callback, consumer = seen(destination)
    for n in range(2):
        send_raw(
            stomp_address,
            destination,
            json.dumps({"marker": callback.marker, "field_two": n}),
            {"dop-msg-id": unique_name("id")},
        )
    drive(consumer, lambda: len(callback.calls) == 2, what="both messages handled")
    ids = [c for _, c, _ in callback.calls]
    assert len(set(ids)) == 2 and all(uuid.UUID(i).version == 4 for i in ids)
    assert [r.correlation_id for r in callback.records] == ids


def test_send_event_carries_the_current_id(seen, unique_name) -> None:
    destination, _ = topic(unique_name)
    callback, consumer = seen(destination)
    with correlation_id("direct-cid"), factory_producer() as producer:
        producer.send_event(destination, {"marker": callback.marker})
    drive(consumer, lambda: callback.calls, what="the message handled")
    assert callback.calls[0][1] == "direct-cid"


def test_filter_outside_any_context_says_dash() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert CorrelationIdFilter().filter(record) is True
    assert record.correlation_id == "-"
