"""One page of a customer's orders, as every listing returns it (the store port, the
service, the console's read views)."""

from __future__ import annotations

from dataclasses import dataclass

from orders_core.domain import Order


@dataclass(frozen=True, slots=True)
class Page:
    """Orders newest first, and the cursor of the next page (None: this was the last)."""

    orders: list[Order]
    next_cursor: str | None = None
