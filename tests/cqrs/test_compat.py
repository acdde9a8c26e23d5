"""Wire compatibility: a django-cqrs service (installed from PyPI in its own virtualenv) and this
package replicate to each other through one RabbitMQ exchange, in both directions.

The newest django-cqrs runs every test; the two that replicate plain models in each direction
also run against 2.8.1, the release a project migrating from is most likely to still run on
the other side of the exchange (on Django 4.2, the newest Django it supports)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import sqlite3
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests import refenv, services
from tests.cqrs.conftest import drain, queue_depth
from tests.helpers import wait_until
from tests.project.cqrs_app.models import Article, ArticleRef, CompatItem, CompatProductRef
from tests.services import RABBITMQ_URL

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).parent / "compat"
#: django-cqrs release -> what its virtualenv holds.
REFERENCES = {
    "3.1.0": ["django-cqrs==3.1.0", "Django>=5.2,<5.3"],
    "2.8.1": ["django-cqrs==2.8.1", "Django>=4.2,<4.3"],
}
NEWEST = "3.1.0"
#: ``@every_release``: run the test against each release in ``REFERENCES``.
every_release = pytest.mark.parametrize(
    "reference", list(REFERENCES), indirect=True, ids=lambda v: f"django-cqrs-{v}"
)


def reference_python(version: str = NEWEST) -> str:
    """A virtualenv with django-cqrs from PyPI, keyed by its contents and shared by sessions."""
    return refenv.reference_python(REFERENCES[version])


@pytest.fixture
def reference(request, cqrs_settings, broker, tmp_path):
    python = reference_python(getattr(request, "param", NEWEST))
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "DJANGO_SETTINGS_MODULE": "refproj.settings",
        "REF_DB": str(tmp_path / "reference.sqlite3"),
        "REF_AMQP_URL": RABBITMQ_URL,
        "REF_EXCHANGE": cqrs_settings["exchange"],
        "REF_QUEUE": cqrs_settings["queue"] + "-reference",
    }
    subprocess.run(
        [python, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
        env=env,
        cwd=HERE,
        check=True,
        timeout=120,
    )
    yield python, env
    channel = broker
    for queue in (env["REF_QUEUE"], "dead_letter_" + env["REF_QUEUE"]):
        channel.queue_delete(queue=queue)


def replicate_the_reference_master(python: str, env: dict[str, str]) -> dict[int, str]:
    """Run the django-cqrs master's writes, then wait for our replica to hold its rows (pk to
    name), which it returns."""
    done = subprocess.run(
        [python, str(HERE / "master.py")],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = {int(pk): name for pk, name in json.loads(done.stdout.splitlines()[-1]).items()}
    drain(
        lambda: dict(CompatProductRef.objects.values_list("pk", "name")) == expected,
        what="django-cqrs master's rows on our replica",
    )
    return expected


@every_release
def test_django_cqrs_master_to_our_replica(reference, broker, cqrs_settings, monkeypatch):
    python, env = reference
    expected = replicate_the_reference_master(python, env)
    first = CompatProductRef.objects.get(pk=min(expected))
    assert (first.price, first.day, first.cqrs_revision) == (
        Decimal("0.25"),
        dt.date(2026, 1, 1),
        1,
    )

    # django-cqrs's SYNCs: a broadcast one is ignored by a CQRS_ONLY_DIRECT_SYNCS replica, one
    # sent to this service's queue is recognised as direct and applied.
    monkeypatch.setattr(CompatProductRef, "CQRS_ONLY_DIRECT_SYNCS", True)
    CompatProductRef.objects.filter(pk=first.pk).update(name="drifted")

    def sync(*queue: str) -> None:
        run = [python, str(HERE / "sync.py"), str(first.pk), *queue]
        subprocess.run(run, env=env, cwd=HERE, check=True, timeout=120, capture_output=True)

    sync()
    drain(lambda: queue_depth(broker, cqrs_settings["queue"]) == 0, what="the broadcast SYNC")
    assert CompatProductRef.objects.get(pk=first.pk).name == "drifted"
    sync(cqrs_settings["queue"])
    drain(
        lambda: CompatProductRef.objects.get(pk=first.pk).name == expected[first.pk],
        what="the direct SYNC",
    )

    # A django-cqrs dump file loads here too.
    dump = Path(env["REF_DB"]).with_name("reference.dump")
    subprocess.run(
        [python, "-m", "django", "cqrs_bulk_dump", "--cqrs-id=compat_to_ours", f"-o={dump}"],
        env=env,
        cwd=HERE,
        check=True,
        timeout=120,
        capture_output=True,
    )
    CompatProductRef.objects.all().delete()
    call_command("cqrs_bulk_load", f"-i={dump}", stderr=io.StringIO())
    assert dict(CompatProductRef.objects.values_list("pk", "name")) == expected


@pytest.mark.parametrize(
    "master_tz,replica_tz",
    [(True, False), (False, True), (False, False)],
    ids=["aware-master-naive-replica", "naive-master-aware-replica", "both-naive"],
)
def test_django_cqrs_master_and_our_replica_with_and_without_time_zone_support(
    reference, broker, cqrs_settings, settings, master_tz, replica_tz
):
    """Either side may run without ``USE_TZ``. A master with it sends datetimes with an offset;
    one without sends its local time in ``TIME_ZONE`` (``cqrs_updated`` and ``expires``). The
    replica stores each as its own setting wants and reads a naive time in ``TIME_ZONE``: west
    of UTC a naive expiry read as UTC had every message of an hour's TTL expire on arrival."""
    python, env = reference
    zone = "America/Chicago"
    env = {**env, "REF_USE_TZ": "1" if master_tz else "0", "REF_TIME_ZONE": zone}
    settings.USE_TZ, settings.TIME_ZONE = replica_tz, zone
    replicate_the_reference_master(python, env)
    assert queue_depth(broker, f"dead_letter_{cqrs_settings['queue']}") == 0
    for updated in CompatProductRef.objects.values_list("cqrs_updated", flat=True):
        assert timezone.is_aware(updated) is replica_tz
        assert abs(timezone.now() - updated) < dt.timedelta(minutes=5)


@every_release
def test_our_master_to_django_cqrs_replica(reference, tmp_path, broker):
    python, env = reference
    log = (tmp_path / "reference-consumer.log").open("wb")
    consumer = subprocess.Popen(
        [python, "-m", "django", "cqrs_consume", "-w", "1"],
        env=env,
        cwd=HERE,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # The reference consumer declares and binds its queue when it starts.
        wait_until(
            lambda: services.amqp_queue_depth(env["REF_QUEUE"]) is not None,
            timeout=60,
            what="reference queue",
        )
        items = [
            CompatItem.objects.create(
                name=f"ours{i}", price=Decimal(f"{i}.50"), day=dt.date(2026, 2, i + 1)
            )
            for i in range(3)
        ]
        items[0].name = "ours0 updated"
        items[0].save()
        items[2].delete()
        expected = {items[0].pk: ("ours0 updated", 1), items[1].pk: ("ours1", 0)}

        def replicated() -> dict:
            with sqlite3.connect(env["REF_DB"], timeout=20) as db:
                rows = db.execute(
                    "SELECT id, name, cqrs_revision FROM refapp_refitemref"
                ).fetchall()
            return {pk: (name, rev) for pk, name, rev in rows}

        wait_until(
            lambda: replicated() == expected, timeout=60, what="rows on the django-cqrs replica"
        )
        with sqlite3.connect(env["REF_DB"]) as db:
            price, day = db.execute(
                "SELECT price, day FROM refapp_refitemref WHERE id = ?", [items[1].pk]
            ).fetchone()
        assert (Decimal(str(price)), day) == (Decimal("1.50"), "2026-02-02")

        # A SYNC sent to the django-cqrs service's own queue (routing key cqrs.<queue>.<id>).
        with sqlite3.connect(env["REF_DB"], timeout=20) as db:
            db.execute("UPDATE refapp_refitemref SET name = 'drifted' WHERE id = ?", [items[1].pk])
        assert items[1].cqrs_sync(queue=env["REF_QUEUE"]) is True
        wait_until(
            lambda: replicated().get(items[1].pk) == ("ours1", 0),
            timeout=60,
            what="the direct SYNC on the django-cqrs replica",
        )
    finally:
        os.killpg(consumer.pid, signal.SIGTERM)
        try:
            consumer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(consumer.pid, signal.SIGKILL)
            consumer.wait(timeout=10)
        log.close()


def _reference_consumer(python: str, env: dict, log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    consumer = subprocess.Popen(
        [python, "-m", "django", "cqrs_consume", "-w", "1"],
        env=env,
        cwd=HERE,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return consumer


def _stop(consumer: subprocess.Popen) -> None:
    os.killpg(consumer.pid, signal.SIGTERM)
    try:
        consumer.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(consumer.pid, signal.SIGKILL)
        consumer.wait(timeout=10)


def test_django_cqrs_serializer_master_to_our_replica(reference, broker):
    """django-cqrs adds the revision pair to a CQRS_SERIALIZER's output; our replica applies it,
    and loads django-cqrs's dump of such a model."""
    python, env = reference
    done = subprocess.run(
        [python, str(HERE / "article_master.py")],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = {int(pk): title for pk, title in json.loads(done.stdout.splitlines()[-1]).items()}
    drain(
        lambda: dict(ArticleRef.objects.values_list("pk", "title")) == expected,
        what="django-cqrs serializer master's rows on our replica",
    )
    assert ArticleRef.objects.get(pk=min(expected)).cqrs_revision == 1

    dump = Path(env["REF_DB"]).with_name("article.dump")
    subprocess.run(
        [python, "-m", "django", "cqrs_bulk_dump", "--cqrs-id=article", f"-o={dump}"],
        env=env,
        cwd=HERE,
        check=True,
        timeout=120,
        capture_output=True,
    )
    ArticleRef.objects.all().delete()
    call_command("cqrs_bulk_load", f"-i={dump}", stderr=io.StringIO())
    assert dict(ArticleRef.objects.values_list("pk", "title")) == expected


def test_our_serializer_master_to_django_cqrs_replica(reference, tmp_path, broker):
    """Our CQRS_SERIALIZER master's messages carry what a django-cqrs replica requires."""
    python, env = reference
    consumer = _reference_consumer(python, env, tmp_path / "reference-consumer.log")
    try:
        wait_until(
            lambda: services.amqp_queue_depth(env["REF_QUEUE"]) is not None,
            timeout=60,
            what="reference queue",
        )
        articles = [Article.objects.create(title=f"ours{i}") for i in range(3)]
        articles[0].title = "ours0 updated"
        articles[0].save()
        articles[2].delete()
        expected = {articles[0].pk: ("ours0 updated", 1), articles[1].pk: ("ours1", 0)}

        def replicated() -> dict:
            with sqlite3.connect(env["REF_DB"], timeout=20) as db:
                rows = db.execute(
                    "SELECT id, title, cqrs_revision FROM refapp_refarticleref"
                ).fetchall()
            return {pk: (title, rev) for pk, title, rev in rows}

        wait_until(
            lambda: replicated() == expected,
            timeout=60,
            what="serializer rows on the django-cqrs replica",
        )
        with sqlite3.connect(env["REF_DB"], timeout=20) as db:
            db.execute(
                "UPDATE refapp_refarticleref SET title = 'drifted' WHERE id = ?", [articles[1].pk]
            )
        assert articles[1].cqrs_sync(queue=env["REF_QUEUE"]) is True
        wait_until(
            lambda: replicated().get(articles[1].pk) == ("ours1", 0),
            timeout=60,
            what="the serializer SYNC on the django-cqrs replica",
        )
    finally:
        _stop(consumer)
