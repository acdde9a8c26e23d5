"""Wrongly typed keys in a CQRS message: a dead letter with a clear reason, never a dead worker."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError
from django_messaging.cqrs.transport import reasons
from django_messaging.cqrs.transport.kombu import KombuConsumer, KombuTransport
from tests.cqrs.conftest import drain, queue_depth
from tests.helpers import wait_until
from tests.project.cqrs_app.models import Product, ProductRef

GOOD = {
    "signal_type": "SAVE",
    "cqrs_id": "product",
    "instance_data": {"id": 1, "name": "x", "cqrs_revision": 0, "cqrs_updated": None},
    "instance_pk": 1,
    "previous_data": None,
    "correlation_id": None,
    "retries": 0,
    "expires": None,
    "meta": None,
}
#: One wrongly typed key each; every one must be dead-lettered.
WRONG = {
    "cqrs_id list": {"cqrs_id": ["product"]},
    "cqrs_id object": {"cqrs_id": {"product": 1}},
    "cqrs_id number": {"cqrs_id": 7},
    "signal_type list": {"signal_type": ["SAVE"]},
    "instance_data list": {"instance_data": [1, 2]},
    "instance_pk object": {"instance_pk": {"id": 1}},
    "previous_data list": {"previous_data": ["x"]},
    "correlation_id object": {"correlation_id": {"a": 1}},
    "expires number": {"expires": 12},
    "expires list": {"expires": ["2099-01-01"]},
    "retries text": {"retries": "2"},
    "retries boolean": {"retries": True},
    "meta list": {"meta": [1]},
}


def bodies() -> list[bytes]:
    return [json.dumps({**GOOD, **change}).encode() for change in WRONG.values()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_cqrs_consume_process_dead_letters_wrong_types_and_goes_on(
    consumer, broker, cqrs_settings, workers
):
    """An unhashable cqrs_id raised TypeError out of the worker: ``-w 1`` exited 1 and ``-w 2``
    restarted its workers until it gave up, with nothing dead-lettered."""
    replica = consumer(workers=workers)
    queue = cqrs_settings["queue"]
    for body in bodies():
        broker.basic_publish(exchange="", routing_key=queue, body=body)
    good = Product.objects.create(name="after the garbage")
    dlq = f"dead_letter_{queue}"
    wait_until(
        lambda: queue_depth(broker, dlq) == len(WRONG), timeout=30, what="one dead letter each"
    )
    wait_until(lambda: ProductRef.objects.filter(pk=good.pk).exists(), what="the good message")
    assert replica.proc.poll() is None, replica.output()
    reasons_seen = []
    for _ in WRONG:
        _method, props, _body = broker.basic_get(dlq, auto_ack=True)
        reasons_seen.append(props.headers["x-cqrs-error"])
    assert all(r.startswith("malformed message: PayloadError: '") for r in reasons_seen)
    assert "crashed" not in replica.output()
    assert replica.terminate() == 0


@pytest.mark.django_db(transaction=True)
def test_the_kombu_consumer_dead_letters_wrong_types(cqrs_settings, broker):
    cqrs_settings["transport"] = "django_messaging.cqrs.transport.KombuTransport"
    queue = cqrs_settings["queue"]
    for body in bodies():
        broker.basic_publish(exchange="", routing_key=queue, body=body)
    good = Product.objects.create(name="after the garbage, over kombu")
    dlq = f"dead_letter_{queue}"
    try:
        drain(
            lambda: (
                queue_depth(broker, dlq) == len(WRONG)
                and ProductRef.objects.filter(pk=good.pk).exists()
            ),
            consumer_class=KombuConsumer,
            what="dead letters and the good message",
        )
    finally:
        KombuTransport.clean_connection()


MARK = "\N{SECTION SIGN}"
marked_text = st.text(max_size=10).map(lambda t: MARK + t)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | marked_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(marked_text, inner, max_size=3),
    max_leaves=6,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "signal_type": st.sampled_from(["SAVE", "DELETE", "SYNC"]) | json_values,
        "cqrs_id": st.just("product") | json_values,
        "instance_data": st.dictionaries(marked_text, json_values, max_size=3) | json_values,
        "instance_pk": st.integers() | json_values,
        "previous_data": st.none() | json_values,
        "correlation_id": st.none() | json_values,
        "retries": st.integers(min_value=-1, max_value=3) | json_values,
        "expires": st.sampled_from([None, "2099-01-01T00:00:00+00:00", "bad"]) | json_values,
        "meta": st.none() | json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages | json_values)
def test_any_payload_is_either_well_typed_or_a_payload_error_without_its_values(message):
    try:
        payload = TransportPayload.from_message(message)
    except PayloadError as exc:
        reason = reasons.malformed(exc)
        assert MARK not in reason
        assert "bad" not in reason  # the unparsable expiry is not quoted either
        return
    assert isinstance(payload.signal_type, SignalType)
    assert isinstance(payload.cqrs_id, str) and payload.cqrs_id
    hash(payload.cqrs_id)
    assert isinstance(payload.instance_data, dict)
    assert isinstance(payload.pk, str | int | float) and not isinstance(payload.pk, bool)
    assert payload.previous_data is None or isinstance(payload.previous_data, dict)
    assert payload.meta is None or isinstance(payload.meta, dict)
    assert isinstance(payload.retries, int) and payload.retries >= 0
    payload.is_expired()
    json.dumps(payload.to_dict())
    # Ids only (they are the message's own), then the class: never the exception's text.
    assert reasons.apply_failed(payload, RuntimeError(MARK)).endswith("failed: RuntimeError")
