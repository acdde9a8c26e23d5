"""Garbage in: every malformed message is reported per message, never raised out of a batch."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_messaging.cqrs.controller.consumer import consume_batch
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
instance_data = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(min_value=-5, max_value=10**12) | st.text(max_size=10) | st.none(),
        "name": json_values,
        "price": json_values,
        "at": json_values,
        "duration": json_values,
        "blob": json_values,
        "cqrs_revision": st.integers(min_value=-3, max_value=5) | json_values,
        "cqrs_updated": st.sampled_from(["2026-01-01 00:00:00+00:00", "garbage", ""]) | json_values,
    },
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "signal_type": st.sampled_from(["SAVE", "DELETE", "SYNC", "NOPE"]) | json_values,
        "cqrs_id": st.sampled_from(["product", "uuid_item", "author", "chosen", "nope"]),
        "instance_data": instance_data | json_values,
        "instance_pk": json_values,
        "previous_data": json_values,
        "retries": st.integers(min_value=-1, max_value=3) | json_values,
        "expires": st.sampled_from([None, "2099-01-01T00:00:00+00:00", "bad"]) | json_values,
        "meta": json_values,
    },
)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(messages | json_values, min_size=1, max_size=4))
def test_garbage_never_escapes_a_batch(bodies):
    payloads = []
    for body in bodies:
        try:
            payloads.append(TransportPayload.from_message(body))
        except PayloadError:
            continue  # the consumer dead-letters these
    results = consume_batch(payloads)
    assert len(results) == len(payloads)
    for result in results:
        assert result is None or isinstance(result, Exception)
