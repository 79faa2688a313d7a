"""Commands: the CloudEvents the service consumes, and :data:`COMMANDS`, the one table of them.

A :class:`Command` is the provider-neutral envelope of a command CloudEvent (the context
attributes the service uses, plus ``data``). Driving adapters build one from whatever arrived;
:meth:`Command.from_cloudevent` does it for a ``cloudevents`` event. Keeping our own small
envelope means the hot HTTP path never has to import the ``cloudevents`` package.

Each command is declared once, as a :class:`CommandSpec` in :data:`COMMANDS`: its type, its
payload model, its decision, the event it emits, its metric and its HTTP route with the
route's OpenAPI text. The service, the events, the metrics, the routes and the OpenAPI
document all read that table (docs/extending.md adds a command in three files).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from orders_core._immutable import immutable
from orders_core.domain import DomainEvent, Items, LineItem, Order, OrderStatus, order_total
from orders_core.errors import FieldError, MalformedRequest, PreconditionFailed, ValidationFailed

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
        from orders_core.telemetry import valid_traceparent, valid_tracestate

        # Extensions are whatever the sender wrote (a number, a malformed id): trace context
        # is checked here, once, and a bad one is dropped as W3C Trace Context says.
        raw_parent, raw_state = (
            event.get_extension("traceparent"),
            event.get_extension("tracestate"),
        )
        traceparent = valid_traceparent(raw_parent) if isinstance(raw_parent, str) else None
        tracestate = (
            valid_tracestate(raw_state) if traceparent and isinstance(raw_state, str) else None
        )
        return cls(
            type=event.get_type(),
            source=event.get_source(),
            id=event.get_id(),
            data=data,
            subject=event.get_subject(),
            traceparent=traceparent,
            tracestate=tracestate,
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


class CancelBody(_Payload):
    """The HTTP body of ``POST /orders/{orderId}/cancel`` (the order id is in the path)."""

    reason: str | None = Field(default=None, max_length=500)


# -- the command table ---------------------------------------------------------------------


@immutable()
class Decision:
    """What a command's decision may use, handed over by the service for one attempt.

    ``load`` reads an order the caller may act on (404 otherwise); ``new_id`` is the id of
    an order this command creates (derived from an idempotency key, or a fresh one);
    ``owner`` the principal id a new order records; ``now`` is read once per attempt, so
    the decision's time is the commit's.
    """

    load: Callable[[str], Order]
    new_id: Callable[[], str]
    owner: str
    now: datetime


Decide = Callable[[Any, Decision], tuple[Order, int]]
"""(validated payload, decision) -> (new state, version it was based on: 0 for a new order)."""


def place(payload: CreateOrder, decision: Decision) -> tuple[Order, int]:
    order = Order.place(
        decision.new_id(), list(payload.items), payload.customer_id, decision.now, decision.owner
    )
    return order, 0


def transition(payload: _Targeted, decision: Decision) -> tuple[Order, int]:
    """Move an order to the payload's ``target``, if it is at ``expectedVersion`` (when given)."""
    order = decision.load(payload.order_id)
    expected = payload.expected_version
    if expected is not None and order.version != expected:
        raise PreconditionFailed(
            f"order {order.order_id} is at version {order.version}, not {expected}",
            final=order.version > expected,  # versions only grow: this one is gone for good
        )
    reason = getattr(payload, "reason", None)
    return order.transition(payload.target, decision.now, reason=reason), order.version


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """A command's HTTP route and its OpenAPI text. A template with ``{orderId}`` targets an
    order (its id from the path, ``If-Match`` as the expected version, an optional body);
    one without takes the payload as its body."""

    method: str
    template: str
    operation: str
    summary: str
    body: type[BaseModel] | None = None
    """The documented request body; None for none (a targeted command's body is optional)."""


PayloadModel = type[BaseModel]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Everything the code knows about one command, declared once."""

    type: str
    payload: PayloadModel
    decide: Decide
    event_type: str
    """The CloudEvent type of the domain event a success emits."""
    metric: str
    """Counted as ``orders.<metric>`` for every success (replays are counted apart)."""
    http: HttpBinding | None = None
    status: OrderStatus = OrderStatus.PENDING
    """The status the order has after the command (what the event announces)."""


def command_table(*specs: CommandSpec) -> Mapping[str, CommandSpec]:
    """A table keyed by command type; refuses a type, event type, metric or route twice."""
    facts: dict[str, Callable[[CommandSpec], object]] = {
        "type": lambda s: s.type,
        "event type": lambda s: s.event_type,
        "metric": lambda s: s.metric,
        "route": lambda s: None if s.http is None else (s.http.method, s.http.template),
    }
    for name, fact in facts.items():
        values = [fact(s) for s in specs if fact(s) is not None]
        twice = {v for v in values if values.count(v) > 1}
        if twice:
            raise ValueError(f"command {name} declared twice: {sorted(map(str, twice))}")
    return {spec.type: spec for spec in specs}


def targeted(status: OrderStatus, **fields: Any) -> type[_Targeted]:
    """The payload model of a command that moves an order to ``status``."""
    name = f"{status.value.capitalize()}Payload"
    return type(name, (_Targeted,), {"__annotations__": {}, "target": status, **fields})


COMMANDS: Final[Mapping[str, CommandSpec]] = command_table(
    CommandSpec(
        CREATE,
        CreateOrder,
        place,
        "io.orderscore.order.created.v1",
        "created",
        HttpBinding("POST", "/orders", "createOrder", "Place an order", CreateOrder),
    ),
    CommandSpec(
        CONFIRM,
        ConfirmOrder,
        transition,
        "io.orderscore.order.confirmed.v1",
        "confirmed",
        HttpBinding("POST", "/orders/{orderId}/confirm", "confirmOrder", "Confirm an order"),
        OrderStatus.CONFIRMED,
    ),
    CommandSpec(
        CANCEL,
        CancelOrder,
        transition,
        "io.orderscore.order.cancelled.v1",
        "cancelled",
        HttpBinding(
            "POST", "/orders/{orderId}/cancel", "cancelOrder", "Cancel an order", CancelBody
        ),
        OrderStatus.CANCELLED,
    ),
    CommandSpec(
        FULFILL,
        FulfillOrder,
        transition,
        "io.orderscore.order.fulfilled.v1",
        "fulfilled",
        HttpBinding("POST", "/orders/{orderId}/fulfill", "fulfillOrder", "Fulfill an order"),
        OrderStatus.FULFILLED,
    ),
)
"""The commands of orders-core. A service can be given another table (tests add one)."""


def event_types(table: Iterable[CommandSpec]) -> dict[OrderStatus, str]:
    """Status -> the event type announcing it, as ``table`` declares them."""
    return {spec.status: spec.event_type for spec in table}


def event_for(
    order: Order, *, table: Mapping[str, CommandSpec] | None = None, **attributes: Any
) -> DomainEvent:
    """The event announcing ``order``'s latest transition, typed as ``table`` (by default
    :data:`COMMANDS`) declares it. The domain does not know the command table, so callers
    that have no command in hand (stores' tests, replays) name the event through here.
    ``attributes`` are :meth:`DomainEvent.for_order`'s (``source``, ``traceparent``...)."""
    types = event_types((COMMANDS if table is None else table).values())
    return DomainEvent.for_order(order, type=types[order.status], **attributes)
