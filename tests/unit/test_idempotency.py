"""Keys, fingerprints and replay rules."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from orders_core.application import (
    ANONYMOUS,
    CONFIRM,
    CREATE,
    Change,
    Command,
    IdempotencyRecord,
    OrderService,
    OrderStore,
    Principal,
    event_key,
    fingerprint,
    http_key,
    replayable,
    scoped_key,
    validate_key,
)
from orders_core.errors import DuplicateRequest, IdempotencyKeyReused, MalformedRequest
from orders_core.testing.clock import FakeClock
from orders_core.testing.memory import InMemoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(fp: str = "fp") -> IdempotencyRecord:
    return IdempotencyRecord("k", fp, 201, b"{}", "o-1", 1, NOW + timedelta(hours=24))


def test_fingerprints_ignore_key_order_but_not_values_or_type() -> None:
    a = fingerprint("t", {"items": [{"sku": "a", "quantity": 1}], "customerId": None})
    b = fingerprint("t", {"customerId": None, "items": [{"quantity": 1, "sku": "a"}]})
    assert a == b
    assert a != fingerprint("t", {"items": [{"sku": "a", "quantity": 2}], "customerId": None})
    assert a != fingerprint("u", {"items": [{"sku": "a", "quantity": 1}], "customerId": None})


ALICE = Principal.jwt("https://issuer.example", "alice")
BOB = Principal.jwt("https://issuer.example", "bob")


def test_scoped_keys_differ_per_principal_and_cannot_be_forged_by_concatenation() -> None:
    assert scoped_key(ALICE, http_key("k")) != scoped_key(BOB, http_key("k"))
    a, ab = Principal.iam("a"), Principal.iam("a b")
    assert scoped_key(a, http_key("b c")) != scoped_key(ab, http_key("c"))
    assert len(scoped_key(ALICE, http_key("k" * 255))) == 64


def test_event_keys_separate_source_and_id_unambiguously() -> None:
    assert scoped_key(ALICE, event_key("a:b", "c")) != scoped_key(ALICE, event_key("a", "b:c"))


def test_an_http_key_can_never_equal_a_cloudevent_identity() -> None:
    # The old derivation made this exact header the key of CloudEvent (urn:erp:orders, evt-42).
    forged = http_key("ce:14:urn:erp:orders:evt-42")
    assert scoped_key(ANONYMOUS, forged) != scoped_key(
        ANONYMOUS, event_key("urn:erp:orders", "evt-42")
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # Separators of any textual encoding moved between fields.
        (("http", ("a\x00b",)), ("cloudevent", ("a", "b"))),
        (("cloudevent", ("a|b", "c")), ("cloudevent", ("a", "b|c"))),
        (("cloudevent", ("", "ab")), ("cloudevent", ("a", "b"))),
        (("cloudevent", ("\x00\x00\x00\x01a", "b")), ("cloudevent", ("a", "\x00\x00\x00\x01b"))),
    ],
)
def test_scoped_keys_are_injective_across_namespaces_and_separators(
    left: tuple[str, tuple[str, ...]], right: tuple[str, tuple[str, ...]]
) -> None:
    from orders_core.application import IdempotencyKey

    assert scoped_key(ANONYMOUS, IdempotencyKey(*left)) != scoped_key(
        ANONYMOUS, IdempotencyKey(*right)
    )


def test_principals_of_different_kinds_never_share_an_id() -> None:
    ids = {
        ANONYMOUS.id,
        Principal.jwt("", "x").id,
        Principal.iam("x").id,
        Principal.authorizer("x").id,
        Principal.service("x").id,
        Principal.jwt("a|b", "c").id,
        Principal.jwt("a", "b|c").id,
    }
    assert len(ids) == 7
    with pytest.raises(ValueError, match="kind"):
        Principal("root")


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
    from orders_core.application import derived_order_id

    assert derived_order_id("k") == derived_order_id("k", 0)
    assert len({derived_order_id("k"), derived_order_id("k", 1), derived_order_id("j")}) == 3
    assert len(derived_order_id("k")) == 32


class _Reads:
    """A memory store that counts its key reads and commits."""

    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self.store, name)
        if name not in ("get_idempotency", "commit"):
            return attribute

        def call(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return call


CREATE_DATA = {"items": [{"id": "sku-1", "qty": 1}]}


def test_a_keyed_create_commits_without_reading_its_key_and_reads_it_on_a_refusal() -> None:
    """A first delivery is the usual case: one write, no read before it (the store
    refuses a key in use in the write). A duplicate is refused there, and only then is
    the record read and replayed."""
    counted = _Reads()
    service = OrderService(cast(OrderStore, counted))
    create = Command(CREATE, "t", "x", CREATE_DATA)
    first = service.handle(create, idempotency_key=http_key("k"))
    assert counted.calls == ["commit"]
    again = service.handle(create, idempotency_key=http_key("k"))
    assert counted.calls == ["commit", "commit", "get_idempotency"]
    assert (again.replayed, again.body) == (True, first.body)


class _Carries(_Reads):
    """A store whose refusals carry the record in the way, as DynamoDB's do: ``carried``
    replaces it (a record of another key, or an expired one, in the hostile cases)."""

    def __init__(self, carried: IdempotencyRecord | None = None) -> None:
        super().__init__()
        self.carried = carried

    def __getattr__(self, name: str) -> object:
        call = super().__getattr__(name)
        if name != "commit":
            return call

        def commit(change: Change, *, now: datetime) -> None:
            try:
                cast(Callable[..., None], call)(change, now=now)
            except DuplicateRequest as refused:
                assert change.idempotency is not None
                found = self.carried or self.store.get_idempotency(change.idempotency.key)
                raise DuplicateRequest(str(refused), record=found) from refused

        return commit


def test_a_refusal_that_carries_a_live_record_is_replayed_without_reading_the_key() -> None:
    counted = _Carries()
    service = OrderService(cast(OrderStore, counted))
    create = Command(CREATE, "t", "x", CREATE_DATA)
    first = service.handle(create, idempotency_key=http_key("k"))
    again = service.handle(create, idempotency_key=http_key("k"))
    assert counted.calls == ["commit", "commit"]
    assert (again.replayed, again.body, again.order_id) == (True, first.body, first.order_id)
    other = Command(CREATE, "t", "y", {"items": [{"id": "sku-2", "qty": 3}]})
    with pytest.raises(IdempotencyKeyReused):
        service.handle(other, idempotency_key=http_key("k"))
    assert counted.calls == ["commit", "commit", "commit"]  # 422 from the carried record too


@pytest.mark.parametrize(
    "carried",
    [
        IdempotencyRecord("other-key", "fp", 201, b"{}", "o-9", 1, NOW + timedelta(days=9)),
        IdempotencyRecord("k", "fp", 201, b"{}", "o-9", 1, NOW - timedelta(days=9)),
    ],
    ids=["another-key", "expired"],
)
def test_a_carried_record_of_another_key_or_expired_is_not_trusted(
    carried: IdempotencyRecord,
) -> None:
    """Another key's record is never replayed, and an expired one may not be the key's last
    generation: the service reads the key, and replays what the read finds."""
    counted = _Carries()
    clock = FakeClock(NOW)
    service = OrderService(cast(OrderStore, counted), clock=clock)
    create = Command(CREATE, "t", "x", CREATE_DATA)
    first = service.handle(create, idempotency_key=http_key("k"))
    counted.carried = IdempotencyRecord(
        scoped_key(ANONYMOUS, http_key("k")) if carried.key == "k" else carried.key,
        carried.fingerprint,
        carried.status,
        carried.body,
        carried.order_id,
        carried.version,
        carried.expires_at,
    )
    again = service.handle(create, idempotency_key=http_key("k"))
    assert counted.calls == ["commit", "commit", "get_idempotency"]
    assert (again.replayed, again.body, again.order_id) == (True, first.body, first.order_id)


def test_a_keyed_change_reads_its_key_before_it_commits() -> None:
    """Unlike a create: the read gives the generation the change's record carries, which a
    store keeping one record per key writes over an expired one (decision 0002: without it
    a later create under the key aimed at an order that existed, 409 for ever)."""
    counted = _Reads()
    service = OrderService(cast(OrderStore, counted))
    made = service.handle(Command(CREATE, "t", "x", CREATE_DATA))
    confirm = Command(CONFIRM, "urn:payments", "pay-1", {"orderId": made.order_id})
    key = event_key(confirm.source, confirm.id)
    first = service.handle(confirm, idempotency_key=key)
    assert counted.calls == ["commit", "get_idempotency", "commit"]
    again = service.handle(confirm, idempotency_key=key)
    assert (again.replayed, again.body) == (True, first.body)


def test_a_change_to_the_order_its_own_key_made_reads_the_key_first() -> None:
    """The key's record may live in that very order (DynamoDB's slots): read before the
    write, the key is refused (422: it made the order) instead of written twice."""
    counted = _Reads()
    service = OrderService(cast(OrderStore, counted))
    made = service.handle(Command(CREATE, "t", "x", CREATE_DATA), idempotency_key=http_key("k"))
    confirm = Command(CONFIRM, "t", "y", {"orderId": made.order_id})
    with pytest.raises(IdempotencyKeyReused):
        service.handle(confirm, idempotency_key=http_key("k"))
    assert counted.calls == ["commit", "get_idempotency"]


@pytest.mark.parametrize(
    ("order_of", "reads"),
    [("the-key", ["get_idempotency"]), ("another", [])],
    ids=["a-creates-record-near-expiry-is-read", "a-changes-record-is-trusted"],
)
def test_a_carried_record_near_its_expiry_is_trusted_only_if_no_generation_can_follow(
    order_of: str, reads: list[str]
) -> None:
    """A key moves past a generation only once a create's record there expired, perhaps on
    an instance whose clock runs ahead: a create's record with less than CLOCK_SKEW to live
    is read again. A change's record is replaced in place, never passed: trusted."""
    from orders_core.application import derived_order_id
    from orders_core.application._service import CLOCK_SKEW

    counted = _Carries()
    clock = FakeClock(NOW)
    service = OrderService(cast(OrderStore, counted), clock=clock)
    create = Command(CREATE, "t", "x", CREATE_DATA)
    first = service.handle(create, idempotency_key=http_key("k"))
    key = scoped_key(ANONYMOUS, http_key("k"))
    stored = counted.store.get_idempotency(key)
    assert stored is not None
    order_id = derived_order_id(key, 0) if order_of == "the-key" else "o-changed"
    counted.carried = IdempotencyRecord(
        key,
        stored.fingerprint,
        200,
        b'{"carried":true}',
        order_id,
        2,
        NOW + CLOCK_SKEW - timedelta(seconds=1),
    )
    again = service.handle(create, idempotency_key=http_key("k"))
    assert counted.calls == ["commit", "commit", *reads]
    assert again.replayed
    assert again.body == (first.body if reads else b'{"carried":true}')
