"""The one retry-or-poison rule every at-least-once consumer applies."""

from __future__ import annotations

import pytest

from orders_core.application import Outcome, classify, reason
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.errors import (
    ConcurrencyConflict,
    DeadlineExceeded,
    IdempotencyKeyReused,
    InvalidTransition,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    StoreUnavailable,
    ValidationFailed,
)
from orders_core.testing import FakeClock


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (MalformedRequest("x"), Outcome.POISON),
        (ValidationFailed("x"), Outcome.POISON),
        (IdempotencyKeyReused("x"), Outcome.POISON),
        (PayloadTooLarge("x"), Outcome.POISON),
        (NotFound("x"), Outcome.RETRY),
        (PreconditionFailed("x"), Outcome.RETRY),
        (ConcurrencyConflict("x"), Outcome.RETRY),
        (StoreUnavailable("x"), Outcome.RETRY),
        (DeadlineExceeded("x"), Outcome.RETRY),
        (RecursionError(), Outcome.RETRY),
        (KeyError("x"), Outcome.RETRY),
    ],
)
def test_what_may_succeed_later_is_retried_and_only_the_hopeless_is_poison(
    error: BaseException, outcome: Outcome
) -> None:
    assert classify(error) is outcome


def _order(status: OrderStatus) -> Order:
    clock = FakeClock()
    order = Order.place("o-1", [LineItem(sku="a", quantity=1)], None, clock())
    path = {
        OrderStatus.PENDING: [],
        OrderStatus.CONFIRMED: [OrderStatus.CONFIRMED],
        OrderStatus.FULFILLED: [OrderStatus.CONFIRMED, OrderStatus.FULFILLED],
        OrderStatus.CANCELLED: [OrderStatus.CANCELLED],
    }[status]
    for step in path:
        order = order.transition(step, clock())
    return order


@pytest.mark.parametrize(
    ("status", "target", "outcome"),
    [
        # Out of order on an unordered queue: the confirm may still arrive.
        (OrderStatus.PENDING, OrderStatus.FULFILLED, Outcome.RETRY),
        # Nothing leaves a terminal status.
        (OrderStatus.FULFILLED, OrderStatus.CANCELLED, Outcome.POISON),
        (OrderStatus.CANCELLED, OrderStatus.CONFIRMED, Outcome.POISON),
        # Statuses only move on: a confirmed order is never PENDING again.
        (OrderStatus.CONFIRMED, OrderStatus.CONFIRMED, Outcome.POISON),
        (OrderStatus.PENDING, OrderStatus.PENDING, Outcome.POISON),
    ],
)
def test_a_transition_is_poison_only_out_of_a_terminal_status(
    status: OrderStatus, target: OrderStatus, outcome: Outcome
) -> None:
    with pytest.raises(InvalidTransition) as refused:
        _order(status).transition(target, FakeClock()())
    assert classify(refused.value) is outcome


def test_a_precondition_is_poison_only_once_the_order_is_past_that_version() -> None:
    from orders_core.application import ANONYMOUS, CANCEL, CONFIRM, CREATE, Command, OrderService
    from orders_core.testing import InMemoryStore

    service = OrderService(InMemoryStore())
    data = {"items": [{"sku": "a", "quantity": 1}]}
    oid = service.handle(Command(CREATE, "t", "c", data)).order_id
    service.handle(Command(CONFIRM, "t", "k", {"orderId": oid}), principal=ANONYMOUS)
    outcomes = []
    for version in (1, 3):  # the order is at 2: 1 is passed for good, 3 may come
        cancel = Command(CANCEL, "t", f"x{version}", {"orderId": oid, "expectedVersion": version})
        with pytest.raises(PreconditionFailed) as refused:
            service.handle(cancel)
        outcomes.append(classify(refused.value))
    assert outcomes == [Outcome.POISON, Outcome.RETRY]


def test_reasons_are_labels_never_message_text() -> None:
    assert reason(NotFound("no order 'secret-id'")) == "not-found"
    assert reason(RecursionError("deep")) == "RecursionError"
