"""An order id Firestore cannot hold as a document id (``__x__`` is reserved, ``.`` and
``..`` are refused) is no order: 404, as on every other store. It reached the store from
``GET /orders/{orderId}`` (the route's pattern is ``[^/]+``), Firestore answered
INVALID_ARGUMENT, and the caller got a 503 with Retry-After, to retry for ever (helper-40)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from orders_core.application import OrderService, Principal
from orders_core.edges.http import HttpApi, HttpRequest
from orders_gcp.firestore import FirestoreStore
from tests.gcp.conftest import RUN

_prefixes = itertools.count()


@pytest.fixture
def store(firestore_client: Any) -> FirestoreStore:
    return FirestoreStore(firestore_client, prefix=f"ids{RUN}-{next(_prefixes)}-")


@pytest.mark.parametrize("order_id", ["__x__", "__orders__", "..", "."])
def test_reading_an_order_id_firestore_cannot_hold_is_404_not_503(
    store: FirestoreStore, order_id: str
) -> None:
    api = HttpApi(OrderService(store))
    caller = Principal.jwt("https://issuer.test/", "bob")
    answer = api.handle(HttpRequest("GET", f"/orders/{order_id}", {}, principal=caller))
    assert answer.status == 404, answer.body


@pytest.mark.parametrize("order_id", ["__x__", ".."])
def test_the_store_says_no_such_order_for_an_id_firestore_cannot_hold(
    store: FirestoreStore, order_id: str
) -> None:
    assert store.get(order_id) is None
