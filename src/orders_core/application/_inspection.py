"""What an operator's console reads, and the one thing it may do, as optional ports.

A store keeps orders and an outbox; these ports are the read models over them that a
console needs, plus a recorded redelivery request. They are optional: a backend declares
the ones it implements on :class:`~orders_core.application.Backend` (``browser``,
``inspector``), and a runtime reads those fields, never probes a store for methods.

- :class:`OrderBrowser`: every order newest first, filtered by status and customer, and the
  counts by status (SQLite, in memory; DynamoDB would need a table scan, so it has none).
- :class:`OutboxInspector`: one order's timeline (each version: the command that made it,
  the state it left, the event it produced and that event's delivery), the undelivered
  and failed events, the relay's lag, and :meth:`~OutboxInspector.request_redelivery`.

Commands are recorded with the change that they made (:class:`CommandNote` on
:class:`~orders_core.application.Change`), in the same atomic write: see
docs/decisions/0019-console-history-and-redelivery.md.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from orders_core._immutable import immutable
from orders_core.application._page import Page

if TYPE_CHECKING:
    from orders_core.application._idempotency import IdempotencyKey

KEY_HINT_LENGTH: Final = 8
"""Characters of a caller's idempotency key kept for display; the rest is never stored."""

CORRUPT_RECORD: Final = "(corrupt record)"
"""The type (and, on a timeline, the status) shown for an outbox row whose record cannot
be read: listings show the row, by position and event id, instead of failing on it."""


def event_type_of(record: str) -> str:
    """The event type of a stored outbox record; :data:`CORRUPT_RECORD` if it cannot be
    read (a listing shows the row by position and event id: the tool to find it)."""
    try:
        return str(json.loads(record)["type"])
    except (ValueError, KeyError, TypeError):
        return CORRUPT_RECORD


DeliveryState = Literal["pending", "failed", "delivered"]
_encode_string: Final = json.encoder.encode_basestring  # json.dumps's, for one str


def _text(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def key_hint(key: IdempotencyKey | None) -> str | None:
    """The caller's key, shortened for display: its first characters, then ``…``.

    Only this hint is recorded. The whole key is the caller's (a retry token some clients
    derive from a payment or a cart): a console has no use for it, and stores keep keys
    only as scoped hashes.
    """
    if key is None:
        return None
    text = key.parts[-1]  # a CloudEvent's key is (source, id): the id tells them apart
    return text if len(text) <= KEY_HINT_LENGTH else text[:KEY_HINT_LENGTH] + "…"


@immutable()
class CommandNote:
    """The command behind one change, recorded with it: what a timeline shows of it."""

    type: str
    command_id: str
    source: str
    principal_kind: str
    key_hint: str | None = None
    key_namespace: str | None = None
    """``http`` (an Idempotency-Key header) or ``cloudevent`` (the event's own identity)."""

    def to_json(self) -> str:
        """Compact JSON, written field by field (once per command on a store's write path:
        0.8 us against json.dumps's 2.9); :meth:`from_json` reads it back."""
        return (
            f'{{"type":{_text(self.type)},"id":{_text(self.command_id)},'
            f'"source":{_text(self.source)},"principal":{_text(self.principal_kind)},'
            f'"key":{_text(self.key_hint)},"keyNamespace":{_text(self.key_namespace)}}}'
        )

    @classmethod
    def from_json(cls, text: str) -> CommandNote:
        data: dict[str, Any] = json.loads(text)
        return cls(
            type=str(data["type"]),
            command_id=str(data["id"]),
            source=str(data["source"]),
            principal_kind=str(data["principal"]),
            key_hint=data.get("key"),
            key_namespace=data.get("keyNamespace"),
        )


@immutable()
class Delivery:
    """One outbox entry and how far its delivery got."""

    position: int
    event_id: str
    event_type: str
    order_id: str
    version: int
    committed_at: datetime
    delivered_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    traceparent: str | None = None
    redelivery_requested_at: datetime | None = None
    """The latest redelivery request for this event, if any."""

    @classmethod
    def of_record(
        cls, position: int, event_id: str, record: dict[str, Any], **state: Any
    ) -> Delivery:
        """An entry from its stored event record (``DomainEvent.to_record``); ``state`` is
        what the outbox row adds (``committed_at``, ``attempts``, ...). Every store that
        implements :class:`OutboxInspector` reads its rows through here."""
        return cls(
            position=position,
            event_id=event_id,
            event_type=str(record["type"]),
            order_id=str(record["subject"]),
            version=int(record["version"]),
            traceparent=record.get("traceparent"),
            **state,
        )

    @classmethod
    def of_corrupt(cls, position: int, event_id: str, reason: str, **state: Any) -> Delivery:
        """An entry whose stored record cannot be read: what its row and event id (always
        ``<order id>.v<version>``) say, with ``reason`` as its last error until the relay
        records one of its own."""
        order_id, _, version = event_id.rpartition(".v")
        state["last_error"] = state.get("last_error") or f"corrupt record: {reason}"
        return cls(
            position=position,
            event_id=event_id,
            event_type=CORRUPT_RECORD,
            order_id=order_id,
            version=int(version) if version.isdigit() else 0,
            **state,
        )

    @property
    def state(self) -> DeliveryState:
        """``delivered`` once a sink accepted it; ``failed`` while its last attempt failed
        (the relay keeps retrying, with backoff); else ``pending``, waiting its turn."""
        if self.delivered_at is not None:
            return "delivered"
        return "failed" if self.attempts > 0 else "pending"

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id of the command that caused the event, if it carried one."""
        if not self.traceparent:
            return None
        parts = self.traceparent.split("-")
        return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@immutable()
class TimelineEntry:
    """One version of an order: the command that made it, the state it left, its event."""

    version: int
    status: str
    at: datetime
    delivery: Delivery
    command: CommandNote | None = None
    """None for changes committed before commands were recorded."""

    @classmethod
    def of(
        cls, delivery: Delivery, record: dict[str, Any] | None, note: str | None
    ) -> TimelineEntry:
        """The version ``delivery``'s event announced; ``note`` is the stored
        :meth:`CommandNote.to_json` of the command behind it, if one was recorded. A
        ``record`` of None (it cannot be read) shows as :data:`CORRUPT_RECORD`."""
        if record is None:
            return cls(
                version=delivery.version,
                status=CORRUPT_RECORD,
                at=delivery.committed_at,
                delivery=delivery,
                command=CommandNote.from_json(note) if note else None,
            )
        return cls(
            version=delivery.version,
            status=str(record["data"]["status"]),
            at=datetime.fromisoformat(record["time"]),
            delivery=delivery,
            command=CommandNote.from_json(note) if note else None,
        )


@immutable()
class OutboxSummary:
    """The outbox at a glance: what waits, what fails, and how far behind the relay is."""

    undelivered: int
    failed: int
    oldest_undelivered_at: datetime | None = None
    last_delivered_at: datetime | None = None
    last_delivery_lag: float | None = None
    """Seconds from commit to accepted delivery of the most recently delivered event."""


@immutable()
class RedeliveryRequest:
    """A recorded request to retry a failed event now. ``created`` is False when an open
    request for the event (made after its last attempt) already existed: that one is
    answered again, so repeating the request changes nothing."""

    request_id: int
    event_id: str
    requested_at: datetime
    requested_by: str
    """The kind of principal who asked (``jwt``, ``anonymous``...)."""
    created: bool = True


class OrderBrowser(ABC):
    """Every order, newest first: the console's list. Stores that can answer it cheaply
    (an index or a table they own) declare it; the contract is in
    ``orders_core.testing.contract.InspectionContract``."""

    @abstractmethod
    def browse(
        self,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        owner: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """Orders newest first (by commit), only those with ``status``, ``customer_id`` and
        ``owner`` when given. A page may hold fewer than ``limit`` while ``next_cursor``
        leads on (a store bounds the rows one page reads); a cursor that is not one raises
        :class:`~orders_core.errors.MalformedRequest`."""

    @abstractmethod
    def status_counts(self, *, customer_id: str | None = None) -> dict[str, int]:
        """How many orders are in each status (every status named, zeros included)."""


class OutboxInspector(ABC):
    """The outbox as a console reads it, and the redelivery it may request."""

    @abstractmethod
    def timeline(self, order_id: str) -> list[TimelineEntry]:
        """Every committed version of the order, oldest first (empty if there is none)."""

    @abstractmethod
    def undelivered(
        self, *, failed_only: bool = False, after: int = 0, limit: int = 50
    ) -> list[Delivery]:
        """Undelivered events in commit order, after position ``after``; ``failed_only``:
        just those whose last attempt failed."""

    @abstractmethod
    def summary(self) -> OutboxSummary: ...

    @abstractmethod
    def request_redelivery(
        self, event_id: str, *, requested_by: str, now: datetime
    ) -> RedeliveryRequest:
        """Record a request to retry a failed event now; the relay then ends its pause.

        Idempotent: while a request made after the event's last attempt is open, that
        request is returned (``created`` False) and nothing is written. Raises
        :class:`~orders_core.errors.NotFound` for an unknown event and
        :class:`~orders_core.errors.NotRedeliverable` for one delivered or not failed.
        The event is published by the relay as always, with its CloudEvent id, in
        commit order: a redelivery never overtakes or duplicates an event on purpose.
        """
