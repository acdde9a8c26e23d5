"""Management commands against real RabbitMQ and the test database."""

from __future__ import annotations

import copy
import datetime as dt
import gc
import io
import json
import os
import re
import signal
import sys
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection  # noqa: F401  (read by a skipif condition)
from django.utils import timezone

from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from django_messaging.cqrs.transport import RabbitMQTransport, TransportMock
from tests.cqrs.conftest import drain, queue_depth
from tests.project.cqrs_app.models import Product, ProductRef, UuidItem, UuidItemRef

pytestmark = pytest.mark.django_db(transaction=True)

COMMANDS = [
    "cqrs_consume",
    "cqrs_bulk_dump",
    "cqrs_bulk_load",
    "cqrs_sync",
    "cqrs_diff_master",
    "cqrs_diff_replica",
    "cqrs_diff_sync",
    "cqrs_deleted_diff_replica",
    "cqrs_deleted_diff_master",
    "cqrs_deleted_sync_replica",
    "cqrs_dead_letters",
    "cqrs_pending",
]


@pytest.fixture
def quiet(settings):
    """Master writes that publish nothing (TransportMock)."""
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"]["transport"] = "django_messaging.cqrs.transport.TransportMock"
    settings.MESSAGING = messaging


def run(name, *args, stdin=None, monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    real_stdout = sys.stdout
    sys.stdout = out  # commands that write to '-' use sys.stdout
    try:
        call_command(name, *args, stdout=out, stderr=err)
    finally:
        sys.stdout = real_stdout
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_explains_itself_with_an_example(name, capsys):
    with pytest.raises(SystemExit):
        call_command(name, "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"Examples?: python manage.py ", text) and f"manage.py {name}" in text, text


def test_bulk_dump_and_load_round_trip(quiet, tmp_path):
    products = [
        Product.objects.create(
            name=f"p{i}",
            price=Decimal(f"{i}.125"),
            at=dt.time(1, 2, i),
            duration=dt.timedelta(seconds=i),
            blob=bytes([i]),
        )
        for i in range(7)
    ]
    dump = tmp_path / "product.dump"
    _, err = run("cqrs_bulk_dump", "--cqrs-id=product", "-o", str(dump), "-b", "3", "--progress")
    assert "7/7" in err
    lines = dump.read_text().split("\n")
    assert lines[0] == "product"
    assert [json.loads(line)["id"] for line in lines[1:]] == [p.pk for p in products]
    with pytest.raises(CommandError, match="exists"):
        run("cqrs_bulk_dump", "--cqrs-id=product", "-o", str(dump))
    _, err = run("cqrs_bulk_load", "-i", str(dump), "-b", "4", "--progress")
    assert "4/7 (57.1%)" in err and "7/7 (100.0%)" in err
    rows = {r.pk: r for r in ProductRef.objects.all()}
    assert len(rows) == 7
    assert rows[products[3].pk].price == Decimal("3.125")
    assert rows[products[3].pk].duration == dt.timedelta(seconds=3)
    assert bytes(rows[products[3].pk].blob) == b"\x03"


def test_progress_lines_of_batches_that_took_no_measurable_time(quiet, tmp_path, monkeypatch):
    """A clock that did not move between the start and a batch (a coarse timer, a tiny table)
    gives a rate of 0 and no ETA rather than a division by zero (django-cqrs 3.0.1's fix)."""
    from types import SimpleNamespace

    from django_messaging.cqrs.management import utils

    monkeypatch.setattr(utils, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    products = [Product.objects.create(name=f"z{i}") for i in range(3)]
    dump = tmp_path / "product.dump"
    _, err = run("cqrs_bulk_dump", "--cqrs-id=product", "-o", str(dump), "-b", "2", "--progress")
    lines = [line for line in err.splitlines() if "rows/s" in line]
    assert lines[-1] == "3/3 (100.0%), 0 rows/s, ETA n/a", err
    assert all(line.endswith(", 0 rows/s, ETA n/a") for line in lines), err
    assert [json.loads(line)["id"] for line in dump.read_text().split("\n")[1:]] == [
        p.pk for p in products
    ]
    _, err = run("cqrs_bulk_load", "-i", str(dump), "--progress")
    assert "3/3 (100.0%), 0 rows/s, ETA n/a" in err
    assert ProductRef.objects.count() == 3
    _, err = run("cqrs_sync", "--cqrs-id=product", "--progress")
    assert "3/3 (100.0%), 0 rows/s, ETA n/a" in err and "Done! 3" in err


class _ClosedPipe(io.StringIO):
    """stdout of ``cqrs_bulk_dump -o - | head -1``: the reader is gone after the first line."""

    def write(self, text):
        if self.tell():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_dump_whose_reader_went_away_leaves_the_database_connection_usable(quiet, monkeypatch):
    """On PostgreSQL the dump streams one ``COPY``; when writing fails half way (``| head``,
    a full disk) the copy is ended at once, so the process's connection can run the next
    query instead of waiting forever behind the unfinished copy."""
    for i in range(5):
        Product.objects.create(name=f"h{i}")
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    # The caller keeps the error (and with it the traceback and the command's frames), as
    # an error report being sent, or a script that reports its failures at the end, does.
    with pytest.raises(BrokenPipeError) as failure:
        call_command("cqrs_bulk_dump", "--cqrs-id=product", "-o", "-", "-b", "1")
    from django.db import connections

    used = connections[Product.objects.db]  # the dump's connection, queried from a thread
    counted: list[int] = []

    def count() -> None:
        with used.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {Product._meta.db_table}")
            counted.append(cursor.fetchone()[0])

    used.inc_thread_sharing()
    try:
        query = threading.Thread(target=count, daemon=True)
        query.start()
        query.join(20)
        stuck = query.is_alive()
    finally:
        del failure  # what the error held goes: a copy still open is ended, for the teardown
        gc.collect()
        query.join(20)
        used.dec_thread_sharing()
    assert not stuck and counted == [5], "the next query waited behind the dump's copy"


def test_bulk_load_clear_is_a_flag(quiet, tmp_path):
    """django-cqrs research §4.2 #15: `--clear False` cleared the table (type=bool)."""
    Product.objects.create(name="kept")
    dump = tmp_path / "d.dump"
    run("cqrs_bulk_dump", "--cqrs-id=product", "-o", str(dump))
    ProductRef.objects.create(
        id=10_000, name="old", price=1, cqrs_revision=0, cqrs_updated=timezone.now()
    )
    run("cqrs_bulk_load", "-i", str(dump))
    assert ProductRef.objects.filter(pk=10_000).exists()
    run("cqrs_bulk_load", "-i", str(dump), "--clear")
    assert not ProductRef.objects.filter(pk=10_000).exists()
    assert ProductRef.objects.count() == 1


def test_bulk_dump_and_load_uuid_pks(quiet, tmp_path):
    """django-cqrs research §4.2 #14: UUID pks broke the dump and diff tools."""
    items = [UuidItem.objects.create(name=f"u{i}") for i in range(3)]
    dump = tmp_path / "u.dump"
    run("cqrs_bulk_dump", "--cqrs-id=uuid_item", "-o", str(dump), "-b", "2")
    run("cqrs_bulk_load", "-i", str(dump))
    assert set(UuidItemRef.objects.values_list("pk", flat=True)) == {i.pk for i in items}


def test_bulk_load_reports_bad_lines(tmp_path):
    dump = tmp_path / "bad.dump"
    dump.write_text(
        'product\n{"id": 1, "name": "ok", "price": "1", "cqrs_revision": 0, '
        '"cqrs_updated": "2026-01-01 00:00:00+00:00"}\nnot json\n{"id": 2}'
    )
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("cqrs_bulk_load", "-i", str(dump), stderr=err)
    assert exit_info.value.code == 1
    assert ProductRef.objects.filter(pk=1).exists()
    lines = err.getvalue().splitlines()
    assert any(line.startswith("Line 3: can't be parsed") for line in lines), lines
    assert any(line.startswith("Line 4:") for line in lines), lines
    assert "Done! 1 row(s) loaded, 2 failed." in lines


def test_cqrs_sync_without_filter_sends_every_row(broker, cqrs_settings):
    """django-cqrs research §4.2 #15: without --filter, cqrs_sync sent nothing."""
    products = [Product.objects.create(name=f"s{i}") for i in range(4)]
    drain(lambda: ProductRef.objects.count() == 4, what="initial rows")
    ProductRef.objects.update(name="drifted")
    _, err = run("cqrs_sync", "--cqrs-id=product", "-b", "3", "--progress")
    assert "Done! 4" in err
    drain(
        lambda: (
            set(ProductRef.objects.values_list("name", flat=True)) == {p.name for p in products}
        ),
        what="synced",
    )
    run(
        "cqrs_sync",
        "--cqrs-id=product",
        "-f",
        json.dumps({"id__in": [products[0].pk]}),
        "-q",
        "another_service",
    )
    assert queue_depth(broker, cqrs_settings["queue"]) == 0
    run("cqrs_sync", "--cqrs-id=product", "-f", "{}", "-q", cqrs_settings["queue"])
    assert queue_depth(broker, cqrs_settings["queue"]) == 4


def test_diff_pipeline_resyncs_drifted_rows(broker, cqrs_settings, monkeypatch):
    products = [Product.objects.create(name=f"d{i}") for i in range(5)]
    drain(lambda: ProductRef.objects.count() == 5, what="rows")
    ProductRef.objects.filter(pk=products[0].pk).delete()
    ProductRef.objects.filter(pk=products[1].pk).update(cqrs_revision=7, name="wrong")
    master_out, _ = run("cqrs_diff_master", "--cqrs-id=product", "-b", "2")
    replica_out, replica_err = run("cqrs_diff_replica", stdin=master_out, monkeypatch=monkeypatch)
    assert "PK to resync" in replica_err
    assert replica_out.splitlines()[0].endswith("," + cqrs_settings["queue"])
    _, sync_err = run("cqrs_diff_sync", "--progress", stdin=replica_out, monkeypatch=monkeypatch)
    # The total is not known in advance (the pks arrive on stdin): no percentage, no ETA.
    assert "2 rows," in sync_err and "%" not in sync_err and "ETA" not in sync_err
    assert "Done! 2 instance(s) synced." in sync_err
    drain(
        lambda: (
            ProductRef.objects.filter(pk=products[1].pk, name="d1").exists()
            and ProductRef.objects.filter(pk=products[0].pk).exists()
        ),
        what="resynced",
    )


def test_deleted_diff_pipeline_removes_rows_gone_from_the_master(quiet, monkeypatch):
    kept = Product.objects.create(name="kept")
    now = timezone.now()
    ProductRef.objects.create(id=kept.pk, name="kept", price=0, cqrs_revision=0, cqrs_updated=now)
    ProductRef.objects.create(
        id=kept.pk + 100, name="ghost", price=0, cqrs_revision=0, cqrs_updated=now
    )
    replica_out, _ = run("cqrs_deleted_diff_replica", "--cqrs-id=product")
    master_out, master_err = run(
        "cqrs_deleted_diff_master", stdin=replica_out, monkeypatch=monkeypatch
    )
    assert str(kept.pk + 100) in master_err
    run("cqrs_deleted_sync_replica", stdin=master_out, monkeypatch=monkeypatch)
    assert list(ProductRef.objects.values_list("pk", flat=True)) == [kept.pk]


def test_dead_letters_dump_retry_purge(broker, cqrs_settings):
    queue = cqrs_settings["queue"]
    dlq = f"dead_letter_{queue}"
    body = {
        "signal_type": "SAVE",
        "cqrs_id": "product",
        "instance_data": {
            "id": 5,
            "name": "revived",
            "price": "1",
            "cqrs_revision": 0,
            "cqrs_updated": "2026-01-01 00:00:00+00:00",
        },
        "previous_data": None,
        "instance_pk": 5,
        "correlation_id": None,
        "retries": 30,
        "expires": "2020-01-01T00:00:00+00:00",
        "meta": None,
    }
    for _ in range(2):
        broker.basic_publish(exchange="", routing_key=dlq, body=json.dumps(body))
    out, _ = run("cqrs_dead_letters", "dump")
    assert out.count("revived") == 2 and queue_depth(broker, dlq) == 2
    out, _ = run("cqrs_dead_letters", "retry")
    retried = [json.loads(line) for line in out.splitlines()]
    assert [m["retries"] for m in retried] == [0, 0]
    assert retried[0]["expires"] > "2026"  # a fresh expiry, not the expired one
    assert queue_depth(broker, dlq) == 0 and queue_depth(broker, queue) == 2
    drain(lambda: ProductRef.objects.filter(pk=5, name="revived").exists(), what="retried row")
    broker.basic_publish(exchange="", routing_key=dlq, body=b"junk")
    run("cqrs_dead_letters", "purge")
    assert queue_depth(broker, dlq) == 0


def test_pending_list_and_flush(broker, cqrs_settings):
    good = cqrs_settings["url"]
    cqrs_settings["url"] = "amqp://guest:guest@127.0.0.1:1/%2F"
    RabbitMQTransport.clean_connection()
    Product.objects.create(name="stored")
    wait_for_confirms()  # the publisher thread has given up on it
    out, _ = run("cqrs_pending", "list")
    assert "SAVE product" in out and "attempts=1" in out
    cqrs_settings["url"] = good
    _, err = run("cqrs_pending", "flush")
    assert "Published 1" in err and PendingMessage.objects.count() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 1


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="the dump's SQL JSON path exists only on PostgreSQL; SQLite uses the Python path",
)
def test_postgres_json_lines_hold_the_same_values_as_the_python_path(quiet, settings):
    from django_messaging.cqrs.dump import master_json_lines, master_rows

    settings.USE_TZ = False  # naive datetimes: the dump takes the Python path
    assert master_json_lines(Product, 1) is None
    settings.USE_TZ = True
    Product.objects.create(
        name='quote " and \\ backslash',
        price=Decimal("-12.345600"),
        day=dt.date(2026, 3, 4),
        at=dt.time(1, 2, 3, 400),
        duration=dt.timedelta(days=-2, seconds=5, microseconds=6),
        blob=bytes(range(200)),
    )
    Product.objects.create(name="nulls")
    from_sql = [json.loads(line) for batch in master_json_lines(Product, 1) for line in batch]
    from_python = [row for batch in master_rows(Product, Product.objects.all(), 1) for row in batch]
    fields = {f.name: f for f in Product._meta.concrete_fields}
    for sql_row, python_row in zip(from_sql, from_python, strict=True):
        assert sql_row.keys() == python_row.keys()
        for name, value in sql_row.items():
            field = fields[name]
            expected = python_row[name]
            if value is None or expected is None:
                assert value == expected, name
            else:
                assert field.to_python(value) == field.to_python(expected), name


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--cqrs-id", "product", "no_such_id"], "Wrong CQRS ID: 'no_such_id'"),
        (["-cid", "no_such_id"], "Wrong CQRS ID"),
        (["-w", "0"], "--workers must be at least 1"),
    ],
)
def test_cqrs_consume_usage_errors_exit_2_before_consuming(argv, message):
    with pytest.raises(CommandError, match=message) as raised:
        call_command("cqrs_consume", *argv)
    assert raised.value.returncode == 2


def test_cqrs_consume_help_lists_the_documented_flags(capsys):
    with pytest.raises(SystemExit):
        call_command("cqrs_consume", "--help")
    text = capsys.readouterr().out
    for flag in ("--workers", "-w", "--cqrs-id", "-cid", "--reload", "-r"):
        assert flag in text


def test_cqrs_pending_run_has_the_flags_of_every_worker_command(capsys):
    with pytest.raises(SystemExit):
        call_command("cqrs_pending", "--help")
    text = capsys.readouterr().out
    for flag in ("--workers", "-w", "--reload", "-r", "--metrics-port", "--start-method"):
        assert flag in text
    with pytest.raises(CommandError, match="--workers must be at least 1"):
        call_command("cqrs_pending", "run", "--workers", "0")


class CountingTransport(TransportMock):
    """A custom transport whose consume() returns at once."""

    calls: list[list[str] | None] = []

    @staticmethod
    def consume(cqrs_ids=None, **kwargs):
        CountingTransport.calls.append(cqrs_ids)


def test_cqrs_consume_runs_a_custom_transport_without_spinning(settings):
    """A BaseTransport's consume() is called in a loop that stops on SIGTERM; one that returns
    at once is called about once a second, not as fast as the CPU allows."""
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"]["transport"] = f"{__name__}.CountingTransport"
    settings.MESSAGING = messaging
    CountingTransport.calls = []
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        call_command("cqrs_consume", "--cqrs-id", "product")
    finally:
        timer.cancel()
    assert CountingTransport.calls and len(CountingTransport.calls) <= 3
    assert CountingTransport.calls[0] == ["product"]
