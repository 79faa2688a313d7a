"""orders-core: a provider-neutral orders service core.

``import orders_core`` loads only what the domain needs; adapters (``orders_local``,
``orders_aws``) and the OpenTelemetry SDK are never imported from here.
"""

from orders_core.commands import Command
from orders_core.deadline import Deadline
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.events import DomainEvent
from orders_core.service import CommandResult, OrderService

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
