"""What the admin's messaging status page shows: the figures of
:mod:`django_messaging.core.status`, two charts of the last hour drawn from the
:class:`~django_messaging.core.models.StatusSample` rows as inline SVG (no script, nothing
fetched), and links to the admin pages of the messaging packages' tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.contrib.admin import AdminSite
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_messaging.core.sampling import THROUGHPUT

__all__ = ["Chart", "admin_links", "charts", "svg"]

#: The span of the charts, in seconds.
SPAN = 3600
WIDTH, HEIGHT, PAD = 600, 140, 4


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    #: (seconds before now, value), oldest first
    points: list[tuple[float, float]]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def peak(self) -> float:
        return max((v for _, v in self.points), default=0.0)

    def svg(self) -> SafeString:
        return svg(self.points, self.title)


def charts(now: datetime | None = None) -> list[Chart]:
    """Backlog (the sampled backlog and lag figures added up, per sample) and throughput (the
    workers' messages per second added up, per minute) over the last hour."""
    from django_messaging.core.models import StatusSample

    now = timezone.now() if now is None else now
    rows = StatusSample.objects.filter(taken_at__gt=now - timedelta(seconds=SPAN)).values_list(
        "taken_at", "name", "value"
    )
    backlog: dict[float, float] = defaultdict(float)
    throughput: dict[float, float] = defaultdict(float)
    for taken_at, name, value in rows:
        ago = (now - taken_at).total_seconds()
        if name == THROUGHPUT:
            throughput[60.0 * (ago // 60)] += value
        else:
            backlog[ago] += value
    return [
        Chart("Backlog", "messages", sorted(backlog.items(), reverse=True)),
        Chart("Throughput", "messages/s", sorted(throughput.items(), reverse=True)),
    ]


def svg(points: Sequence[tuple[float, float]], title: str) -> SafeString:
    """A line of (seconds ago, value) points over the last hour, now on the right."""
    top = max((v for _, v in points), default=0.0) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def xy(ago: float, value: float) -> str:
        x = PAD + inner_w * (1 - min(max(ago, 0.0), SPAN) / SPAN)
        y = PAD + inner_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    coords = " ".join(xy(ago, value) for ago, value in points)
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2"/>',
        (tuple(xy(ago, value).split(",")) for ago, value in points),
    )
    return format_html(
        '<svg class="messaging-chart" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"'
        ' viewBox="0 0 {} {}" width="{}" height="{}">'
        '<rect x="0" y="0" width="{}" height="{}" fill="none" stroke="#ccc"/>'
        '<polyline points="{}" fill="none" stroke="#417690" stroke-width="2"/>'
        '<g fill="#417690">{}</g>'
        '<g fill="#666" font-size="11" font-family="sans-serif">'
        '<text x="{}" y="14">{}</text><text x="{}" y="{}">60 min ago</text>'
        '<text x="{}" y="{}" text-anchor="end">now</text></g></svg>',
        f"{title}, last hour",
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        coords,
        dots,
        PAD + 4,
        f"{top:g}",
        PAD + 4,
        HEIGHT - PAD - 4,
        WIDTH - PAD - 4,
        HEIGHT - PAD - 4,
    )


def admin_links(site: AdminSite) -> list[tuple[str, str]]:
    """(title, URL) of the changelist of every model of a messaging package that ``site``
    has an admin for (core's own excepted)."""
    core = apps.get_app_config("messaging_core")
    links = []
    for model in site._registry:
        config = apps.get_app_config(model._meta.app_label)
        if not config.name.startswith("django_messaging.") or config is core:
            continue
        name = f"{site.name}:{model._meta.app_label}_{model._meta.model_name}_changelist"
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        links.append((f"{config.verbose_name}: {model._meta.verbose_name_plural}", url))
    return sorted(links)
