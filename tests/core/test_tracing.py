"""``django_messaging.core.tracing``: nothing happens, nothing is imported, until enabled.

Each case runs in a fresh interpreter (the packages' tests cover tracing when it is on)."""

from __future__ import annotations

from tests.core.test_metrics import run


def test_disabled_calls_change_nothing_and_import_nothing() -> None:
    out = run(
        """
        from django_messaging.core import tracing
        headers = {"a": "1"}
        with tracing.process("kafka", "t", headers) as span:
            pass
        print(tracing.enabled, tracing.inject(headers), span, tracing.extract(headers),
              tracing.send_all("rabbitmq", [object()]), "opentelemetry" in sys.modules)
        """
    )
    assert out.split() == ["False", "{'a':", "'1'}", "None", "None", "[]", "False"]


def test_enable_without_opentelemetry_returns_false() -> None:
    out = run(
        """
        from django_messaging.core import tracing
        sys.modules["opentelemetry"] = None  # what an install without the extra has
        print(tracing.enable(), tracing.enabled)
        """
    )
    assert out.split() == ["False", "False"]
