"""Keys, fingerprints and replay rules."""

from datetime import UTC, datetime, timedelta

import pytest

from orders_core.errors import IdempotencyKeyReused, MalformedRequest
from orders_core.idempotency import (
    IdempotencyRecord,
    event_key,
    fingerprint,
    replayable,
    scoped_key,
    validate_key,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(fp: str = "fp") -> IdempotencyRecord:
    return IdempotencyRecord("k", fp, 201, b"{}", "o-1", 1, NOW + timedelta(hours=24))


def test_fingerprints_ignore_key_order_but_not_values_or_type() -> None:
    a = fingerprint("t", {"items": [{"sku": "a", "quantity": 1}], "customerId": None})
    b = fingerprint("t", {"customerId": None, "items": [{"quantity": 1, "sku": "a"}]})
    assert a == b
    assert a != fingerprint("t", {"items": [{"sku": "a", "quantity": 2}], "customerId": None})
    assert a != fingerprint("u", {"items": [{"sku": "a", "quantity": 1}], "customerId": None})


def test_scoped_keys_differ_per_principal_and_cannot_be_forged_by_concatenation() -> None:
    assert scoped_key("alice", "k") != scoped_key("bob", "k")
    assert scoped_key("a", "b\nc") != scoped_key("a\nb", "c")
    assert len(scoped_key("alice", "k" * 255)) == 64


def test_event_keys_separate_source_and_id_unambiguously() -> None:
    assert event_key("a:b", "c") != event_key("a", "b:c")


def test_replay_rules() -> None:
    assert replayable(None, "fp", NOW) is None
    assert replayable(record(), "fp", NOW) == record()
    with pytest.raises(IdempotencyKeyReused):
        replayable(record(), "other", NOW)
    assert replayable(record(), "other", NOW + timedelta(hours=24)) is None


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(MalformedRequest):
        validate_key(key)


def test_good_keys_pass() -> None:
    assert (
        validate_key("8e03978e-40d5-43e8-bc93-6894a57f9324")
        == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )


def test_derived_order_ids_are_stable_per_key_and_generation() -> None:
    from orders_core.idempotency import derived_order_id

    assert derived_order_id("k") == derived_order_id("k", 0)
    assert len({derived_order_id("k"), derived_order_id("k", 1), derived_order_id("j")}) == 3
    assert len(derived_order_id("k")) == 32
