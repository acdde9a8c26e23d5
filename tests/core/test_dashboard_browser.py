"""The admin's messaging status page in a real headless Chromium: log in, open it, read it.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/local-services.sh``, run by
``nox -s services``, installs them) and ``selenium``; without them the test skips and says which
is missing. The screenshot is written to the test's temporary directory, printed in the output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_messaging.core import sampling, status
from django_messaging.core.admin import StatusAdmin
from django_messaging.core.models import StatusSample
from django_messaging.core.status import Figure, Kind

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE = "/admin/messaging_core/statussample/"


def _missing() -> str | None:
    for path, package in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
        if not os.access(path, os.X_OK):
            return f"{path} missing: apt-get install {package} (scripts/local-services.sh does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in noxfile.py's TEST_REQUIREMENTS)"
    return None


pytestmark = [
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
    pytest.mark.timeout(60),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the CI machine runs the tests as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,1100",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(StatusAdmin, "status_timeout", 0.2)  # no Kafka broker in this test

    def source(timeout: float) -> list[Figure]:
        return [
            Figure("probe", "probe_backlog", Kind.BACKLOG, 42.0),
            Figure("probe", "probe_lag", Kind.LAG, 8.0, (("partition", "3"),)),
        ]

    status.register("probe", "thing", source)
    yield
    status.unregister("probe", "thing")


def test_the_dashboard_in_a_headless_browser(
    live_server: Any, admin_user: Any, browser: Any, probe: None, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    now = timezone.now()
    StatusSample.objects.bulk_create(
        sample
        for minutes, backlog, rate in [(55, 10, 1.0), (40, 60, 3.0), (20, 30, 2.0), (5, 50, 5.0)]
        for sample in (
            StatusSample(
                taken_at=now - timedelta(minutes=minutes),
                package="probe",
                name="probe_backlog",
                value=backlog,
            ),
            StatusSample(
                taken_at=now - timedelta(minutes=minutes),
                package="w",
                name=sampling.THROUGHPUT,
                value=rate,
            ),
        )
    )

    browser.get(f"{live_server.url}{PAGE}")
    assert "/admin/login/" in browser.current_url  # not logged in yet
    browser.find_element(By.NAME, "username").send_keys(admin_user.username)
    browser.find_element(By.NAME, "password").send_keys("password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "messaging-figures"))
    )
    assert browser.current_url == f"{live_server.url}{PAGE}"
    assert browser.title.startswith("Messaging status")

    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#messaging-figures tbody tr")
    ]
    assert ["probe", "probe_backlog", "-", "42"] in rows
    assert ["probe", "probe_lag", "partition=3", "8"] in rows

    charts = browser.find_elements(By.CSS_SELECTOR, "svg.messaging-chart")
    assert len(charts) == 2
    for chart in charts:  # drawn, with a size, one dot per sample
        assert chart.is_displayed()
        assert chart.size["width"] > 300 and chart.size["height"] > 50
        assert len(chart.find_elements(By.TAG_NAME, "circle")) == 4
    headings = browser.find_element(By.ID, "chart-backlog").text
    assert "Backlog (messages): latest 50, peak 60" in headings
    assert (
        "Throughput (messages/s): latest 5, peak 5"
        in browser.find_element(By.ID, "chart-throughput").text
    )

    link = browser.find_element(By.CSS_SELECTOR, "#messaging-links a")
    assert link.get_attribute("href").startswith(f"{live_server.url}/admin/")

    screenshot = tmp_path / "messaging-status.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
