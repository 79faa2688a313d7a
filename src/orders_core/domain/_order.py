"""The Order aggregate: its data, its limits and its status machine. Pure: no I/O, no clock.

Status transitions::

    PENDING ──confirm──▶ CONFIRMED ──fulfill──▶ FULFILLED
       │                    │
       └──────cancel────────┴──────▶ CANCELLED

Anything else raises :class:`~orders_core.errors.InvalidTransition` (HTTP 409).
Every accepted transition bumps ``version`` by one; the version is what optimistic
concurrency and ETags compare.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from orders_core.errors import InvalidTransition

MAX_ITEMS = 100
MAX_QUANTITY = 10_000
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
"""1 to 64 characters: ASCII letters and digits, then also ``. _ : / -``."""
CURRENCY_PATTERN = r"^[A-Z]{3}$"
UNOWNED = "anonymous:"
"""The owner of orders stored before owners were recorded, when every caller was anonymous:
the anonymous principal's id (``orders_core.application.ANONYMOUS.id``)."""
MAX_UNIT_PRICE = 10**12
"""Minor units; keeps ``quantity * unitPrice`` summed over 100 items far inside int64."""


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.FULFILLED, OrderStatus.CANCELLED}),
    OrderStatus.FULFILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


def reachable(status: OrderStatus) -> set[OrderStatus]:
    """``status`` and every status an order in it can still come to (statuses only move on)."""
    seen, todo = {status}, [status]
    while todo:
        for after in TRANSITIONS[todo.pop()]:
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, defer_build=True)


class LineItem(_Model):
    """One SKU and how many. ``id``/``qty`` are accepted as input aliases (the seed's shape)."""

    sku: Annotated[
        str,
        Field(
            pattern=SKU_PATTERN,
            validation_alias=AliasChoices("sku", "id"),
            serialization_alias="sku",
        ),
    ]
    quantity: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_QUANTITY,
            strict=True,
            validation_alias=AliasChoices("quantity", "qty"),
            serialization_alias="quantity",
        ),
    ]
    unit_price: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_UNIT_PRICE,
            strict=True,
            validation_alias=AliasChoices("unitPrice", "unit_price"),
            serialization_alias="unitPrice",
            description="Price of one unit in minor units of `currency` (cents for USD).",
        ),
    ] = None
    currency: Annotated[
        str | None, Field(pattern=CURRENCY_PATTERN, description="ISO 4217 code.")
    ] = None

    @model_validator(mode="after")
    def _price_needs_currency(self) -> Self:
        if (self.unit_price is None) != (self.currency is None):
            raise ValueError("unitPrice and currency go together: give both or neither")
        return self


Items = Annotated[list[LineItem], Field(min_length=1, max_length=MAX_ITEMS)]


class Money(_Model):
    amount: int = Field(description="Minor units.")
    currency: str


def order_total(items: list[LineItem]) -> Money | None:
    """The order's total, or None when unpriced. Raises ValueError on mixed pricing."""
    priced = [item for item in items if item.unit_price is not None]
    if not priced:
        return None
    if len(priced) != len(items):
        raise ValueError("either every item has a unitPrice or none does")
    currencies = {item.currency for item in priced}
    if len(currencies) != 1:
        raise ValueError(f"all items must share one currency, got {sorted(map(str, currencies))}")
    amount = sum(item.quantity * (item.unit_price or 0) for item in priced)
    return Money(amount=amount, currency=str(priced[0].currency))


class Order(_Model):
    """The aggregate. Immutable: transitions return a new instance with ``version + 1``."""

    order_id: str = Field(alias="orderId")
    customer_id: str | None = Field(default=None, alias="customerId")
    items: Items
    total: Money | None = None
    status: OrderStatus
    version: int = Field(ge=1)
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    cancel_reason: str | None = Field(default=None, alias="cancelReason")
    owner: str = Field(default=UNOWNED, exclude=True)
    """The id of the principal that created the order (:mod:`orders_core.application`).
    Stores keep it beside the order; it is never part of the order's JSON (responses,
    events), which says nothing about who asked."""

    @classmethod
    def place(
        cls,
        order_id: str,
        items: list[LineItem],
        customer_id: str | None,
        now: datetime,
        owner: str = UNOWNED,
    ) -> Order:
        """A new PENDING order at version 1."""
        return cls(
            order_id=order_id,
            owner=owner,
            customer_id=customer_id,
            items=items,
            total=order_total(items),
            status=OrderStatus.PENDING,
            version=1,
            created_at=now,
            updated_at=now,
        )

    def transition(self, target: OrderStatus, now: datetime, *, reason: str | None = None) -> Order:
        if target not in TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"order {self.order_id} is {self.status.value}; it cannot become {target.value}",
                final=not any(target in TRANSITIONS[s] for s in reachable(self.status)),
            )
        update: dict[str, object] = {
            "status": target,
            "version": self.version + 1,
            "updated_at": now,
        }
        if reason is not None:
            update["cancel_reason"] = reason
        return self.model_copy(update=update)

    def owned_by(self, owner: str) -> Order:
        """This order with its stored owner (stores call it on read)."""
        return self if owner == self.owner else self.model_copy(update={"owner": owner})

    def to_json(self) -> bytes:
        """The canonical camelCase JSON: what responses, events and replays carry."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @property
    def etag(self) -> str:
        return f'"{self.version}"'
