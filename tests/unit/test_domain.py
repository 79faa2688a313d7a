"""The Order aggregate: transitions, limits and JSON shape."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from orders_core.application import CreateOrder
from orders_core.domain import MAX_ITEMS, MAX_QUANTITY, LineItem, Order, OrderStatus
from orders_core.errors import InvalidTransition

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = OrderStatus


def order(status: OrderStatus = S.PENDING) -> Order:
    placed = Order.place("o-1", [LineItem(sku="a", quantity=1)], None, NOW)
    return placed.model_copy(update={"status": status})


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.PENDING, S.CONFIRMED),
        (S.PENDING, S.CANCELLED),
        (S.CONFIRMED, S.FULFILLED),
        (S.CONFIRMED, S.CANCELLED),
    ],
)
def test_allowed_transitions_bump_the_version(start: OrderStatus, target: OrderStatus) -> None:
    before = order(start)
    after = before.transition(target, NOW)
    assert (after.status, after.version) == (target, before.version + 1)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.PENDING, S.FULFILLED),
        (S.PENDING, S.PENDING),
        (S.CONFIRMED, S.CONFIRMED),
        (S.FULFILLED, S.CANCELLED),
        (S.CANCELLED, S.CONFIRMED),
        (S.CANCELLED, S.FULFILLED),
        (S.FULFILLED, S.CONFIRMED),
    ],
)
def test_other_transitions_are_conflicts(start: OrderStatus, target: OrderStatus) -> None:
    with pytest.raises(InvalidTransition, match=target.value):
        order(start).transition(target, NOW)


def test_the_seed_request_shape_is_accepted_and_rendered_in_camel_case() -> None:
    command = CreateOrder.model_validate({"items": [{"id": "sku-1", "qty": 2}]})
    placed = Order.place("o-1", list(command.items), None, NOW)
    assert placed.to_json() == (
        b'{"orderId":"o-1","items":[{"sku":"sku-1","quantity":2}],"status":"PENDING",'
        b'"version":1,"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}'
    )


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"sku": "a", "quantity": 1}] * (MAX_ITEMS + 1),
        [{"sku": "a", "quantity": 0}],
        [{"sku": "a", "quantity": MAX_QUANTITY + 1}],
        [{"sku": "a", "quantity": "2"}],
        [{"sku": "a", "quantity": 1.5}],
        [{"sku": "", "quantity": 1}],
        [{"sku": "x" * 65, "quantity": 1}],
        [{"sku": "has space", "quantity": 1}],
        [{"sku": "-leading", "quantity": 1}],
        [{"sku": "a", "quantity": 1, "unitPrice": 100}],
        [{"sku": "a", "quantity": 1, "unitPrice": -1, "currency": "EUR"}],
        [{"sku": "a", "quantity": 1, "unitPrice": 1, "currency": "eur"}],
    ],
)
def test_limits_are_enforced(items: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        CreateOrder.model_validate({"items": items})


@pytest.mark.parametrize(
    "items",
    [
        [{"sku": "a", "quantity": 1}] * MAX_ITEMS,
        [{"sku": "x" * 64, "quantity": MAX_QUANTITY}],
        [{"sku": "A.b_c:d/e-1", "quantity": 1}],
    ],
)
def test_values_at_the_limits_are_accepted(items: list[dict[str, object]]) -> None:
    assert CreateOrder.model_validate({"items": items}).items


def test_priced_orders_total_in_one_currency() -> None:
    items = [
        LineItem(sku="a", quantity=3, unit_price=250, currency="EUR"),
        LineItem(sku="b", quantity=1, unit_price=1000, currency="EUR"),
    ]
    placed = Order.place("o-1", items, None, NOW)
    assert placed.total is not None
    assert (placed.total.amount, placed.total.currency) == (1750, "EUR")


@pytest.mark.parametrize(
    "items",
    [
        [
            {"sku": "a", "quantity": 1, "unitPrice": 1, "currency": "EUR"},
            {"sku": "b", "quantity": 1, "unitPrice": 1, "currency": "USD"},
        ],
        [
            {"sku": "a", "quantity": 1, "unitPrice": 1, "currency": "EUR"},
            {"sku": "b", "quantity": 1},
        ],
    ],
)
def test_mixed_pricing_is_refused(items: list[dict[str, object]]) -> None:
    parsed = [LineItem.model_validate(i) for i in items]
    with pytest.raises(ValueError, match=r"currency|unitPrice"):
        Order.place("o-1", parsed, None, NOW)


def test_mixed_pricing_is_a_validation_error_before_the_domain() -> None:
    items = [
        {"sku": "a", "quantity": 1, "unitPrice": 1, "currency": "EUR"},
        {"sku": "b", "quantity": 1},
    ]
    with pytest.raises(ValidationError) as caught:
        CreateOrder.model_validate({"items": items})
    assert caught.value.errors()[0]["loc"] == ("items",)
