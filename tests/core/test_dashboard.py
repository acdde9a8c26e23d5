"""The admin's messaging status page and the status samples the worker loop records."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_messaging.core import sampling, status
from django_messaging.core.admin import StatusAdmin
from django_messaging.core.models import StatusSample
from django_messaging.core.status import Figure, Kind
from django_messaging.core.worker import StopRequested, Worker, run_worker

URL = "/admin/messaging_core/statussample/"


@pytest.fixture(autouse=True)
def quick_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Kafka broker runs for these tests: its source gives up after 0.2 s, not 2."""
    monkeypatch.setattr(StatusAdmin, "status_timeout", 0.2)
    monkeypatch.setattr(sampling, "TIMEOUT", 0.2)


@pytest.fixture
def probe() -> Iterator[list[float]]:
    """A package of this test's own: a backlog, a lag on two partitions, an age (not sampled)."""
    values = [7.0, 3.0, 4.0]

    def source(timeout: float) -> list[Figure]:
        backlog, lag0, lag1 = values
        return [
            Figure("probe", "probe_backlog", Kind.BACKLOG, backlog),
            Figure("probe", "probe_lag", Kind.LAG, lag0, (("partition", "0"),)),
            Figure("probe", "probe_lag", Kind.LAG, lag1, (("partition", "1"),)),
            Figure("probe", "probe_age_seconds", Kind.AGE, 99.0),
        ]

    status.register("probe", "thing", source)
    yield values
    status.unregister("probe", "thing")


def test_the_url_is_the_statussample_changelist() -> None:
    assert reverse("admin:messaging_core_statussample_changelist") == URL


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login_page(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={URL}"


@pytest.mark.django_db
def test_staff_without_the_view_permission_is_refused(client: Client) -> None:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_statussample"))
    assert client.get(URL).status_code == 200


@pytest.mark.django_db
def test_non_staff_is_sent_to_the_login_page(client: Client) -> None:
    user = User.objects.create_user("someone", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_statussample"))
    client.force_login(user)
    assert client.get(URL).status_code == 302


@pytest.mark.django_db
def test_nothing_can_be_added_changed_or_deleted(admin_client: Client) -> None:
    sample = StatusSample.objects.create(taken_at=timezone.now(), package="p", name="n", value=1)
    assert admin_client.get(f"{URL}add/").status_code == 403
    assert admin_client.get(f"{URL}{sample.pk}/delete/").status_code == 403


@pytest.mark.django_db
def test_the_page_shows_the_figures_of_the_registry(
    admin_client: Client, probe: list[float]
) -> None:
    out = StringIO()
    call_command("messaging_status", "--package", "probe", "--json", stdout=out)
    assert '"value": 7.0' in out.getvalue()

    html = admin_client.get(URL).content.decode()
    rows = re.findall(
        r"<tr><td>probe</td><td>(\w+)</td><td>([^<]*)</td><td class=\"value\">([^<]*)</td></tr>",
        html,
    )
    assert rows == [
        ("probe_backlog", "-", "7"),
        ("probe_lag", "partition=0", "3"),
        ("probe_lag", "partition=1", "4"),
        ("probe_age_seconds", "-", "99"),
    ]
    # every installed package's own source answers too (the database ones at least)
    if apps.is_installed("django_messaging.outbox"):
        assert "<td>outbox</td><td>outbox_backlog</td>" in html
    probe[0] = 12.0  # read at each request, never cached
    assert '<td class="value">12</td>' in admin_client.get(URL).content.decode()


@pytest.mark.django_db
def test_a_failing_source_is_shown_and_the_others_still_are(
    admin_client: Client, probe: list[float]
) -> None:
    def broken(timeout: float) -> list[Figure]:
        raise status.Unreachable("broker at 127.0.0.1:1 refused the connection")

    status.register("probe", "broker", broken)
    try:
        html = admin_client.get(URL).content.decode()
    finally:
        status.unregister("probe", "broker")
    assert "probe (broker): UNREACHABLE: broker at 127.0.0.1:1 refused" in html
    assert "<td>probe_backlog</td>" in html


@pytest.mark.django_db
def test_links_to_the_messaging_tables_that_have_an_admin(admin_client: Client) -> None:
    html = admin_client.get(URL).content.decode()
    links = re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', html)
    expected = [
        ("django_messaging.outbox", "admin:messaging_outbox_published_changelist"),
        ("django_messaging.outbox", "admin:messaging_outbox_received_changelist"),
        ("django_messaging.cqrs", "admin:messaging_cqrs_pendingmessage_changelist"),
    ]
    urls = {url for url, _ in links}
    for app, name in expected:
        if apps.is_installed(app):
            assert reverse(name) in urls
    assert URL not in urls
    for url, _ in links:  # every link opens
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_without_samples_the_page_says_how_they_come(admin_client: Client) -> None:
    html = admin_client.get(URL).content.decode()
    assert 'messaging-chart"' not in html
    assert "No samples in the last hour" in html


@pytest.mark.django_db
def test_record_sums_backlog_and_lag_figures_and_keeps_one_hour(probe: list[float]) -> None:
    old = StatusSample.objects.create(
        taken_at=timezone.now() - timedelta(hours=2), package="probe", name="probe_lag", value=5
    )
    assert sampling.record("worker-a", 2.5, interval=60, timeout=0.2) >= 3
    rows = {
        (s.package, s.name): s.value
        for s in StatusSample.objects.filter(package__in=["probe", "worker-a"])
    }
    assert rows == {
        ("probe", "probe_backlog"): 7.0,
        ("probe", "probe_lag"): 7.0,  # 3 + 4, over the partitions
        ("worker-a", "throughput"): 2.5,
    }
    assert not StatusSample.objects.filter(pk=old.pk).exists()
    # another worker within the interval: only its throughput, the figures are not repeated
    assert sampling.record("worker-b", 1.0, interval=60, timeout=0.2) == 1
    assert sampling.record("worker-b", 1.0, interval=0, timeout=0.2) >= 3


@pytest.mark.django_db
def test_the_charts_draw_the_samples_of_the_last_hour(
    admin_client: Client, probe: list[float]
) -> None:
    now = timezone.now()
    for minutes, backlog, rate in [(50, 10, 1.0), (30, 40, 2.0), (10, 20, 4.0)]:
        taken_at = now - timedelta(minutes=minutes)
        StatusSample.objects.bulk_create(
            [
                StatusSample(
                    taken_at=taken_at, package="probe", name="probe_backlog", value=backlog
                ),
                StatusSample(taken_at=taken_at, package="probe", name="probe_lag", value=5),
                StatusSample(taken_at=taken_at, package="w", name="throughput", value=rate),
            ]
        )
    StatusSample.objects.create(
        taken_at=now - timedelta(minutes=90), package="probe", name="probe_backlog", value=1000
    )
    html = admin_client.get(URL).content.decode()
    charts = re.findall(r'<svg class="messaging-chart".*?</svg>', html)
    assert len(charts) == 2
    backlog_svg, throughput_svg = charts
    assert 'aria-label="Backlog, last hour"' in backlog_svg
    assert "Backlog (messages): latest 25, peak 45" in html  # the 90-minute-old sample left out
    assert "Throughput (messages/s): latest 4, peak 4" in html
    points = re.search(r'<polyline points="([^"]+)"', backlog_svg)
    assert points is not None
    xs_ys = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert len(xs_ys) == 3
    assert [x for x, _ in xs_ys] == sorted(x for x, _ in xs_ys)  # oldest on the left
    assert min(y for _, y in xs_ys) == xs_ys[1][1]  # the peak (45) is the highest point
    assert throughput_svg.count("<circle") == 3


class Counting(Worker):
    name = "counting"

    def __init__(self, units: int, stop: StopRequested) -> None:
        self.units, self.count, self.stop_requested = units, 0, stop

    def run_once(self) -> None:
        self.count += 5
        self.units -= 1
        threading.Event().wait(0.02)
        if self.units == 0:
            self.stop_requested.request()

    def messages_handled(self) -> int:
        return self.count


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_records_samples_every_interval(
    settings, probe: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the probe alone: a sample takes no time waiting for the Kafka broker these tests lack
    monkeypatch.setattr(
        status, "_SOURCES", {("probe", "thing"): status._SOURCES[("probe", "thing")]}
    )
    settings.MESSAGING = {**settings.MESSAGING, "STATUS": {"SAMPLE_INTERVAL": 0.1}}
    stop = StopRequested()
    started = time.monotonic()
    run_worker(Counting(30, stop), stop)  # 30 units of at least 0.02 s
    elapsed = time.monotonic() - started
    rates = list(StatusSample.objects.filter(package="counting").values_list("value", flat=True))
    # one sample per 0.1 s interval at most (a busy machine stretches the run, not the rate)
    assert 2 <= len(rates) <= elapsed / 0.1 + 1
    for rate in rates:  # 5 messages per 0.02 s unit: at most 250/s (fewer on a busy machine)
        assert 0 < rate <= 250
    assert StatusSample.objects.filter(package="probe", name="probe_backlog").exists()


@pytest.mark.django_db(transaction=True)
def test_no_samples_when_the_interval_is_zero(settings, probe: list[float]) -> None:
    settings.MESSAGING = {**settings.MESSAGING, "STATUS": {"SAMPLE_INTERVAL": 0}}
    stop = StopRequested()
    run_worker(Counting(10, stop), stop)
    assert not StatusSample.objects.exists()


@pytest.mark.django_db
def test_a_database_error_while_sampling_never_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(*args: object, **kwargs: object) -> int:
        raise DatabaseError("the database is away")

    monkeypatch.setattr(sampling, "record", failing)
    sampling.Sampler("w", 0.0, lambda: 1).tick()
    assert "status sample not written: the database is away" in caplog.text
