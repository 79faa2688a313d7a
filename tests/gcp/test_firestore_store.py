"""What the Firestore store does beyond the contract: a commit whose answer was lost, outbox
positions that collide, an unreachable database, the backend factory."""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace
from typing import Any

import pytest

from orders_core.application import Change, event_for
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.errors import StoreUnavailable
from orders_core.testing.clock import FakeClock
from orders_gcp import firestore as firestore_module
from orders_gcp.firestore import FirestoreStore, backend
from tests.gcp.conftest import PROJECT, RUN

_prefixes = itertools.count()


@pytest.fixture
def store(firestore_client: Any) -> FirestoreStore:
    return FirestoreStore(firestore_client, prefix=f"s{RUN}-{next(_prefixes)}-")


def _placed(clock: FakeClock, order_id: str = "o-1") -> Change:
    order = Order.place(order_id, [LineItem(sku="sku-1", quantity=1)], "cust-s", clock())
    return Change(order, 0, (event_for(order),))


def test_a_commit_whose_answer_was_lost_is_recognised_as_done(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core import exceptions as gax

    clock = FakeClock()
    original, lost = store._commit_writes, []

    def land_then_lose_the_answer(writes: Any) -> None:
        original(writes)
        if not lost:
            lost.append(True)
            raise gax.ServiceUnavailable("connection reset after the commit")

    monkeypatch.setattr(store, "_commit_writes", land_then_lose_the_answer)
    store.commit(_placed(clock), now=clock())  # retried, refused, recognised: no error
    assert lost == [True]
    assert store.get("o-1") is not None
    assert [e.id for e in store.events_for("o-1")] == ["o-1.v1"]


def test_an_outbox_position_taken_by_another_commit_is_committed_again(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    store.commit(_placed(clock, "o-1"), now=clock())
    (taken,) = store.pending()
    fresh = store._positions
    calls = iter([[taken.position]])
    monkeypatch.setattr(store, "_positions", lambda n, after: next(calls, None) or fresh(n, after))
    store.commit(_placed(clock, "o-2"), now=clock())
    assert [p.event.order_id for p in store.pending()] == ["o-1", "o-2"]
    assert store.get("o-2") is not None


def test_an_orders_positions_rise_even_when_this_process_is_behind(
    store: FirestoreStore, firestore_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    store.commit(_placed(clock), now=clock())
    order = store.get("o-1")
    assert order is not None
    # Another instance, whose clock is an hour behind, confirms the order.
    other = FirestoreStore(firestore_client, prefix=store.collections.prefix)
    behind = time.time_ns() - 3_600 * 10**9
    monkeypatch.setattr(firestore_module, "time", SimpleNamespace(time_ns=lambda: behind))
    confirmed = order.transition(OrderStatus.CONFIRMED, clock())
    other.commit(Change(confirmed, 1, (event_for(confirmed),)), now=clock())
    assert [p.event.id for p in store.pending()] == ["o-1.v1", "o-1.v2"]


def test_an_unreachable_database_is_store_unavailable_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from google.cloud import firestore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", dead)
    client = firestore.Client(project=PROJECT)
    store = FirestoreStore(client, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.get("o-1")
    assert time.monotonic() - started < 15
    client.close()


def test_the_backend_factory_opens_the_store_and_its_outbox(firestore_emulator: str) -> None:
    opened = backend({"project": PROJECT, "prefix": f"b{RUN}-"})
    try:
        assert opened.name == "firestore"
        assert opened.outbox is opened.store
        assert f"emulator at {firestore_emulator}" in opened.describe
        assert opened.store.get("nothing") is None
    finally:
        opened.close()


def test_the_local_runtime_knows_the_store_by_name(firestore_emulator: str) -> None:
    from orders_local.backends import BACKENDS, open_backend

    assert BACKENDS["firestore"] == ("orders_gcp.firestore:backend", "gcp")
    opened = open_backend("firestore", {"project": PROJECT, "prefix": f"l{RUN}-"})
    opened.close()
