"""Commands: the CloudEvents the service consumes, and the payload model of each type.

A :class:`Command` is the provider-neutral envelope of a command CloudEvent (the context
attributes the service uses, plus ``data``). Driving adapters build one from whatever arrived;
:meth:`Command.from_cloudevent` does it for a ``cloudevents`` event. Keeping our own small
envelope means the hot HTTP path never has to import the ``cloudevents`` package.

=================================  ===================  ==============================
CloudEvent ``type``                payload model        effect
=================================  ===================  ==============================
``io.orderscore.order.create.v1``  :class:`CreateOrder`  new PENDING order (201)
``io.orderscore.order.confirm.v1`` :class:`ConfirmOrder` PENDING -> CONFIRMED
``io.orderscore.order.cancel.v1``  :class:`CancelOrder`  PENDING/CONFIRMED -> CANCELLED
``io.orderscore.order.fulfill.v1`` :class:`FulfillOrder` CONFIRMED -> FULFILLED
=================================  ===================  ==============================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from orders_core._immutable import immutable
from orders_core.domain import Items, LineItem, OrderStatus, order_total
from orders_core.errors import FieldError, MalformedRequest, ValidationFailed

if TYPE_CHECKING:
    from cloudevents.core.base import BaseCloudEvent

CREATE: Final = "io.orderscore.order.create.v1"
CONFIRM: Final = "io.orderscore.order.confirm.v1"
CANCEL: Final = "io.orderscore.order.cancel.v1"
FULFILL: Final = "io.orderscore.order.fulfill.v1"

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""Order and customer ids: 1 to 64 URL-safe characters."""

MAX_JSON_DEPTH: Final = 32
"""Deeper JSON is refused before it reaches pydantic."""


@immutable()
class Command:
    """A command CloudEvent, as the service sees it.

    ``(source, id)`` is the event's identity. ``traceparent``/``tracestate`` are the
    distributed-tracing extension; the service copies them into every event it emits.
    ``data`` is a JSON object, or its undecoded JSON bytes (an HTTP body): the service
    validates bytes without building a dict first.
    """

    type: str
    source: str
    id: str
    data: Mapping[str, Any] | bytes = field(default_factory=dict)
    subject: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def from_cloudevent(cls, event: BaseCloudEvent) -> Command:
        """Take a parsed ``cloudevents`` event; only dict (JSON object) data is a command."""
        data = event.get_data()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise MalformedRequest("a command CloudEvent's data must be a JSON object")
        traceparent = event.get_extension("traceparent")
        tracestate = event.get_extension("tracestate")
        return cls(
            type=event.get_type(),
            source=event.get_source(),
            id=event.get_id(),
            data=data,
            subject=event.get_subject(),
            traceparent=str(traceparent) if traceparent is not None else None,
            tracestate=str(tracestate) if tracestate is not None else None,
        )


def _depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Nesting of at most ``limit`` levels (deeper is refused before it reaches pydantic)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def shallow(body: bytes) -> bool:
    """Too few brackets to nest past :data:`MAX_JSON_DEPTH`: no need to walk the value."""
    return body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object body. Refuses invalid UTF-8, bad JSON, deep nesting, non-objects."""
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedRequest("the body is not valid UTF-8") from None
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers past the 4,300-digit limit.
        raise MalformedRequest("the body is not valid JSON") from None
    if not shallow(body) and not _depth_ok(value):
        raise MalformedRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(value, dict):
        raise ValidationFailed("the body must be a JSON object", [FieldError("/", "not an object")])
    return value


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, defer_build=True)


class CreateOrder(_Payload):
    """``POST /orders`` body. ``{"items":[{"id":"sku-1","qty":2}]}`` is the minimal form."""

    items: Items
    customer_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        validation_alias=AliasChoices("customerId", "customer_id"),
        alias="customerId",
    )

    @field_validator("items")
    @classmethod
    def _one_pricing(cls, items: list[LineItem]) -> list[LineItem]:
        """Every item priced in one currency, or none: a 422 here, not a 500 in the domain
        (schemathesis found a mixed order reaching ``Order.place``)."""
        order_total(items)  # raises ValueError, which pydantic reports against /items
        return items


class _Targeted(_Payload):
    target: ClassVar[OrderStatus]

    order_id: str = Field(
        pattern=ID_PATTERN, validation_alias=AliasChoices("orderId", "order_id"), alias="orderId"
    )
    expected_version: int | None = Field(
        default=None,
        ge=0,  # 0 matches no order: how a weak or foreign If-Match tag fails with 412
        strict=True,  # a JSON integer: lax mode would read "1_0" as 10 and " 3 " as 3
        validation_alias=AliasChoices("expectedVersion", "expected_version"),
        alias="expectedVersion",
        description="Apply only if the order is at this version (HTTP If-Match); else 412.",
    )


class ConfirmOrder(_Targeted):
    target: ClassVar[OrderStatus] = OrderStatus.CONFIRMED


class CancelOrder(_Targeted):
    target: ClassVar[OrderStatus] = OrderStatus.CANCELLED
    reason: str | None = Field(default=None, max_length=500)


class FulfillOrder(_Targeted):
    target: ClassVar[OrderStatus] = OrderStatus.FULFILLED


PAYLOADS: Final[dict[str, type[_Payload]]] = {
    CREATE: CreateOrder,
    CONFIRM: ConfirmOrder,
    CANCEL: CancelOrder,
    FULFILL: FulfillOrder,
}
"""CloudEvent type -> payload model: the first half of the service's registry."""
