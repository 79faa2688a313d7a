"""The domain layer: the Order aggregate, its status machine and the events it emits.

Pure values and rules: no I/O, no clock, no ids of its own making (the application layer
passes them in). Everything a caller needs is re-exported here; the modules behind it are
private and may be reorganised.
"""

from orders_core.domain._events import DEFAULT_SOURCE, DomainEvent, event_id
from orders_core.domain._order import (
    MAX_ITEMS,
    MAX_QUANTITY,
    UNOWNED,
    Items,
    LineItem,
    Order,
    OrderStatus,
    order_total,
)

__all__ = [
    "DEFAULT_SOURCE",
    "MAX_ITEMS",
    "MAX_QUANTITY",
    "UNOWNED",
    "DomainEvent",
    "Items",
    "LineItem",
    "Order",
    "OrderStatus",
    "event_id",
    "order_total",
]
