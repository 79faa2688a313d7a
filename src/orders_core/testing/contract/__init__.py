"""The contracts every store and outbox keep, as pytest suites (needs pytest).

Subclass :class:`StoreContract` in a ``Test*`` class and implement ``make_store`` (and
``committed_events`` if your store keeps events somewhere other than an
:class:`~orders_core.application.Outbox`). The suite drives the store both directly and through
:class:`~orders_core.application.OrderService` and :class:`~orders_core.edges.http.HttpApi`, so an
adapter that passes it answers exactly as every other adapter does. A store that keeps an
outbox also subclasses :class:`OutboxContract`; one that declares the console's ports
(``OrderBrowser``, ``OutboxInspector``) :class:`InspectionContract`.

The store's cases live in one module per part: ``store`` (the port itself), ``service``
(idempotency, concurrency and lifecycle through the service and HTTP) and ``ownership``
(principals and key namespaces).
"""

from orders_core.testing.contract.inspection import InspectionContract
from orders_core.testing.contract.outbox import OutboxContract
from orders_core.testing.contract.ownership import OwnershipCases
from orders_core.testing.contract.service import ServiceCases
from orders_core.testing.contract.store import StorePortCases


class StoreContract(StorePortCases, ServiceCases, OwnershipCases):
    """Base class of the contract suite; not collected by itself (its name lacks ``Test``)."""


__all__ = ["InspectionContract", "OutboxContract", "StoreContract"]
