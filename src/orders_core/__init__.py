"""orders-core: a provider-neutral orders service core.

``import orders_core`` loads only what the domain needs; adapters (``orders_local``,
``orders_aws``) and the OpenTelemetry SDK are never imported from here.
"""

from orders_core.application import Command, CommandResult, Deadline, OrderService
from orders_core.domain import DomainEvent, LineItem, Order, OrderStatus

__version__ = "0.1.0"

__all__ = [
    "Command",
    "CommandResult",
    "Deadline",
    "DomainEvent",
    "LineItem",
    "Order",
    "OrderService",
    "OrderStatus",
    "__version__",
]
