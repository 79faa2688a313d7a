"""The small interfaces adapters implement: a store, a publisher, a clock and an id factory.

Stores and publishers are ABCs because the core owns their contract (and
``orders_core.testing`` checks it); the clock and id factory are Protocols because any
callable of the right shape will do.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Final, Protocol

from orders_core._immutable import immutable
from orders_core.application._idempotency import IdempotencyRecord
from orders_core.application._inspection import CommandNote, OrderBrowser, OutboxInspector
from orders_core.application._page import Page
from orders_core.domain import DomainEvent, Order

MAX_PAGE_SIZE = 100


@immutable()
class Change:
    """Everything one command decided, committed all together or not at all.

    ``expected_version`` is the version the decision was based on (0: the order must not
    exist yet). ``idempotency`` may be None for a command that carried no key.
    ``order_json`` is ``order.to_json()``, computed once here (or passed by a caller that
    has it) so stores do not serialize the order again. ``command`` says what made the
    change, for stores that keep a history (an :class:`OutboxInspector`'s timeline); the
    others ignore it.
    """

    order: Order
    expected_version: int
    events: tuple[DomainEvent, ...]
    idempotency: IdempotencyRecord | None = None
    order_json: bytes = b""
    command: CommandNote | None = None

    def __post_init__(self) -> None:
        if not self.order_json:
            object.__setattr__(self, "order_json", self.order.to_json())


@immutable()
class PendingEvent:
    """An outbox entry not yet marked delivered. ``position`` orders commits."""

    position: int
    event: DomainEvent
    attempts: int = 0


class CorruptEntry(Exception):
    """The first pending outbox row cannot be read as an event (bad JSON, a field missing:
    a damaged or hand-edited row). :meth:`Outbox.pending` raises it only when that row
    comes first; a later one ends the list before it, so the events before it still go out.
    """

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"outbox entry {position} cannot be read: {reason}")
        self.position = position
        self.reason = reason


def read_pending(rows: Iterable[tuple[int, str, int]]) -> list[PendingEvent]:
    """Outbox rows ``(position, record JSON, attempts)`` in commit order, as an outbox's
    :meth:`~Outbox.pending` answers them: each decoded on its own, up to the first that
    cannot be, which raises :class:`CorruptEntry` when it is the first row."""
    found: list[PendingEvent] = []
    for position, text, attempts in rows:
        try:
            event = DomainEvent.from_record(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            if not found:
                raise CorruptEntry(position, f"{type(exc).__name__}: {exc}") from None
            break
        found.append(PendingEvent(position, event, attempts))
    return found


class OrderStore(ABC):
    """Where orders, their outbox events and idempotency records live.

    Implementations must make :meth:`commit` atomic and conditional; everything the
    contract suite in ``orders_core.testing`` checks is part of this interface.
    """

    groups_commits: ClassVar[bool] = False
    """Whether :meth:`unit_of_work` joins the changes committed inside it into one
    transaction (SQLite's group commit). False: each commit is durable on its own."""

    begins_without_waiting: ClassVar[bool] = False
    """Whether ``unit_of_work(wait=False)`` begins a unit at once or raises
    :class:`~orders_core.errors.StoreBusy`, never blocking on another writer (SQLite tries
    its write lock with no busy timeout), so an event loop may run the unit itself. False:
    a unit may block, and runtimes run it on a thread."""

    @contextlib.contextmanager
    def unit_of_work(self, *, wait: bool = True) -> Iterator[None]:
        """Changes committed by this thread inside the block, committed together when it
        ends (stores that group commits); by default each is durable when committed.

        ``wait=False`` (for stores that declare :attr:`begins_without_waiting`): take what
        the unit needs now, or raise :class:`~orders_core.errors.StoreBusy` before the block
        runs, rather than wait for another writer."""
        yield

    @abstractmethod
    def get(self, order_id: str) -> Order | None:
        """The order with its ``owner``, read strongly consistently (a read that decides a
        write)."""

    @abstractmethod
    def list_by_customer(
        self,
        customer_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Page:
        """A customer's orders, oldest first; only those ``owner`` created unless it is None.

        ``cursor`` comes from a previous page; a cursor that is not one raises
        :class:`~orders_core.errors.MalformedRequest`. A page may hold fewer than ``limit``
        orders while ``next_cursor`` still leads on (a store that bounds the work of one
        page); every order is reachable by following cursors.
        """

    @abstractmethod
    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record stored under the (scoped) key, expired or not."""

    @abstractmethod
    def commit(self, change: Change, *, now: datetime) -> None:
        """Write the order, its events and its idempotency record atomically.

        A new order's ``owner`` is stored with it and never changed by later changes.

        Raises :class:`~orders_core.errors.DuplicateRequest` when an unexpired record with
        the same key exists, whatever command wrote it, and
        :class:`~orders_core.errors.ConcurrencyConflict` when the stored version is not
        ``change.expected_version``. Either way nothing is written. The key check must be
        part of the write: the service commits a keyed create without reading its key
        first, and reads the record only when the commit is refused. A store may also
        refuse a key whose expired record holds its generation's slot; the service then
        moves the key to a later generation. A store whose refusal returns what was in the
        way (DynamoDB) may pass that record on as ``DuplicateRequest.record``: a live one is
        replayed without :meth:`get_idempotency`.
        """


class Outbox(ABC):
    """Committed events awaiting publication, for stores that keep an outbox table.

    (DynamoDB has no such table: its stream plays this part.)
    """

    @abstractmethod
    def pending(self, limit: int = 100) -> list[PendingEvent]:
        """Undelivered events in commit order, up to the first that cannot be read; when
        that one comes first, raises :class:`CorruptEntry` (the relay records it as a
        failed attempt). :func:`read_pending` decodes rows so."""

    @abstractmethod
    def mark_delivered(self, positions: Sequence[int]) -> None: ...

    @abstractmethod
    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        """Count a failed attempt; the events stay pending."""

    @abstractmethod
    def undelivered_count(self) -> int:
        """Committed events not yet delivered (the ``orders.outbox.undelivered`` gauge)."""


class EventPublisher(ABC):
    """Sends events to the outside world, at least once."""

    @abstractmethod
    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Publish all of ``events`` or raise.

        :class:`PublishFailed` names the events the sink did not accept (the others were);
        any other exception means none may be marked delivered. Publishing an event again
        is safe: it keeps its CloudEvent id, on which consumers deduplicate.
        """

    def close(self) -> None:  # noqa: B027 - optional: most publishers hold nothing
        """Release what the publisher holds (a file, a connection, a thread); whoever built
        it calls this once, after the last publish. Nothing by default."""


@dataclass(frozen=True, slots=True)
class Unaccepted:
    """One event a sink did not accept, with the sink's code, and whether to try again."""

    event: DomainEvent
    code: str
    message: str = ""
    retryable: bool = True


class PublishFailed(Exception):
    """Some events of a batch were not accepted; every event not in ``failed`` was.

    A publisher that sends a batch in several calls (EventBridge: 10 entries a call) says
    exactly which ones failed, so a caller retries those (``retryable``) and sets the others
    aside (a dead-letter queue) instead of publishing the whole batch again.
    """

    def __init__(self, failed: Sequence[Unaccepted]) -> None:
        codes = sorted({f.code for f in failed})
        super().__init__(f"{len(failed)} event(s) not accepted: {', '.join(codes)}")
        self.failed = tuple(failed)

    @property
    def retryable(self) -> bool:
        """Whether every failed event may succeed on a retry."""
        return all(f.retryable for f in self.failed)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """What a backend module's factory builds from configuration, and what it supports.

    Runtimes and the CLI read these fields; they never probe a store for methods. A backend
    module exposes one factory, ``backend(settings: Mapping[str, str]) -> Backend``, and a
    runtime's registry names it (``orders_local.backends``).
    """

    name: str
    store: OrderStore
    describe: str
    """For a startup line: where the data is (``SQLite file /srv/orders.db, synchronous
    NORMAL``), never a secret."""
    outbox: Outbox | None = None
    """Committed events awaiting a relay; None when the backend publishes by other means."""
    events: str | None = None
    """Where events go without an outbox (DynamoDB: ``the table's stream``)."""
    file: str | None = None
    """A database file another process may open (a relay process beside the server)."""
    watch_commits: Callable[[Callable[[], None]], None] | None = None
    """Subscribes a relay's wake-up to commits made by other processes too (PostgreSQL's
    LISTEN/NOTIFY: another replica's, a worker's); None when a runtime sees only its own
    (it wakes its relay after those itself)."""
    close: Callable[[], None] = _nothing
    browser: OrderBrowser | None = None
    """Every order newest first and counts by status, for the console; None: the store
    cannot list across customers cheaply (DynamoDB)."""
    inspector: OutboxInspector | None = None
    """Timelines, deliveries and redelivery requests, for stores with an outbox table."""


BackendFactory = Callable[[Mapping[str, str]], Backend]


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class IdFactory(Protocol):
    def __call__(self) -> str: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


_V7_RANDOM: Final = ~((0xF << 76) | (0x3 << 62)) & ((1 << 80) - 1)
"""The 80 bits under the timestamp less the version (4) and variant (2) bits: 74 random."""
_V7_MARKS: Final = (0x7 << 76) | (0x2 << 62)


def new_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562) as 32 hex digits: the milliseconds since
    the epoch, then 74 random bits from ``os.urandom``. Order ids, command ids of HTTP
    requests, correlation ids.

    Time-ordered because an order id is a primary key: SQLite then inserts each one beside
    the last instead of on a random page of the key's index, so a transaction dirties one
    index page, not one per create (docs/decisions/0010: 4,703 -> 5,016 req/s at 16
    connections). 74 random bits keep ids unguessable; an id tells the millisecond its
    order was created, which the order's ``createdAt`` says anyway.
    """
    millis = time.time_ns() // 1_000_000
    try:
        random = _RANDOM.popleft()
    except IndexError:
        random = _refill()
    return f"{millis << 80 | random & _V7_RANDOM | _V7_MARKS:032x}"


_RANDOM: Final[collections.deque[int]] = collections.deque()
"""Random 80-bit values for :func:`new_id`, cut from one ``os.urandom`` call at a time: a
syscall per id (three per create) showed in the event loop's profile (docs/decisions/0014).
``popleft`` is atomic, so threads share it; a forked child starts empty, or it would hand
out its parent's values."""
_BATCH: Final = 256


def _refill() -> int:
    chunk = os.urandom(10 * _BATCH)
    values = [int.from_bytes(chunk[i : i + 10]) for i in range(0, len(chunk), 10)]
    _RANDOM.extend(values[1:])
    return values[0]


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_RANDOM.clear)
