"""OrderService: a command CloudEvent in, a decision, one atomic commit, an answer out.

The command table (:data:`orders_core.application.COMMANDS`) gives each command type its
payload model and its decision. A decision is pure: it reads the aggregate, applies the
transition and returns the new state; the service turns that into one
:class:`~orders_core.application.Change` (state + events + idempotency record) and lets the store
commit it conditionally.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from orders_core import telemetry
from orders_core._immutable import immutable
from orders_core.application._commands import (
    COMMANDS,
    Command,
    CommandSpec,
    Decision,
    parse_json_object,
    shallow,
)
from orders_core.application._deadline import Deadline
from orders_core.application._idempotency import (
    DEFAULT_TTL,
    IdempotencyKey,
    IdempotencyRecord,
    derived_order_id,
    fingerprint,
    replayable,
    scoped_key,
)
from orders_core.application._inspection import CommandNote, key_hint
from orders_core.application._page import Page
from orders_core.application._ports import (
    MAX_PAGE_SIZE,
    Change,
    Clock,
    IdFactory,
    OrderStore,
    new_id,
    utc_now,
)
from orders_core.application._security import ANONYMOUS, Principal
from orders_core.domain import DEFAULT_SOURCE, DomainEvent, Order
from orders_core.errors import (
    ConcurrencyConflict,
    Contended,
    DuplicateRequest,
    FieldError,
    IdempotencyKeyReused,
    InvalidTransition,
    MalformedRequest,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)

log = logging.getLogger("orders_core.service")

MAX_OWNER_BYTES: Final = 1024
"""The longest principal id (UTF-8) a command may carry: every store keeps it as the order's
owner and lists by it. Firestore refuses a query value over 1,500 bytes, PostgreSQL an index
entry over ~2.7 kB. Real ids are far shorter: an IAM user's ARN, the longest, is at most
~620 characters (a 512-character path and a 64-character name)."""

CONTENDED_WAIT: Final = 0.01
"""Seconds, times the attempt, a command waits before deciding again when the store said
another request's write held the item (``Contended``): DynamoDB transactions last tens of
milliseconds, and the SDK does not retry that conflict itself."""
CLOCK_SKEW: Final = timedelta(minutes=30)
"""More than two instances' clocks may differ. A keyed create's record is trusted from a
refusal only while it has longer than this to live: an instance whose clock runs ahead may
already have moved the key on a generation. DynamoDB accepts a signature from 5 minutes
late to 15 early, so two instances that reach it may be 20 minutes apart; the rest is
margin (a duplicate in a record's last half hour reads the key, as every one did before)."""


@immutable(eq=False)
class Unit:
    """A unit of work the service runs commands in (:meth:`OrderService.unit_of_work`):
    what it committed, which holds once the unit has ended without an exception."""

    committed: list[CommandResult]


@immutable()
class CommandResult:
    """The answer to a command. ``body`` is the exact bytes a replay repeats."""

    status: int
    body: bytes
    order_id: str
    version: int
    replayed: bool = False

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @classmethod
    def replay_of(cls, record: IdempotencyRecord) -> CommandResult:
        return cls(record.status, record.body, record.order_id, record.version, replayed=True)


_CONFLICT_KINDS: Final[dict[type[Exception], str]] = {
    InvalidTransition: "transition",
    PreconditionFailed: "precondition",
    IdempotencyKeyReused: "key-reused",
    ConcurrencyConflict: "version",
}


def validate_payload(model: type[BaseModel], data: Mapping[str, Any] | bytes) -> BaseModel:
    """Validate command data, turning pydantic's errors into field errors with JSON pointers.

    JSON bytes are validated as they are, with no dict in between (~4 us of a warm create).
    A refusal, and anything deeply nested, takes the dict route instead: pydantic's JSON
    mode words some errors its own way ("a valid array"), and a body must get the same
    answer on every route (tests/unit/test_validate_bytes.py compares both).
    """
    if isinstance(data, bytes):
        if shallow(data):
            try:
                return model.model_validate_json(data)
            except ValidationError:
                pass  # refused: the dict route below says why, in its words
        data = parse_json_object(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(pointer="".join(f"/{part}" for part in err["loc"]) or "/", detail=err["msg"])
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ValidationFailed("the request body failed validation", errors) from None


class OrderService:
    """The application service every driving adapter calls.

    Thread-safe as long as the store is: it holds no per-request state.
    """

    def __init__(
        self,
        store: OrderStore,
        *,
        clock: Clock = utc_now,
        ids: IdFactory = new_id,
        idempotency_ttl: timedelta = DEFAULT_TTL,
        source: str = DEFAULT_SOURCE,
        max_attempts: int = 3,
        commands: Mapping[str, CommandSpec] = COMMANDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.idempotency_ttl = idempotency_ttl
        self.source = source
        self.max_attempts = max_attempts
        self.commands = commands
        """What this service runs: the command table every reader of it shares."""

    @contextlib.contextmanager
    def unit_of_work(self, *, wait: bool = True) -> Iterator[Unit]:
        """Run the commands handled with ``unit=`` inside one unit of the store's: a store
        that groups commits (SQLite) makes them one transaction, committed when the block
        ends; others commit each at once. A runtime answers what the unit carried only
        after the block has ended, and learns from :attr:`Unit.committed` what was
        written (a replay writes nothing), so it need not guess from status codes.

        ``wait=False``: raise :class:`~orders_core.errors.StoreBusy` before the block runs
        if the store cannot begin the unit without waiting for another writer (see
        :attr:`OrderStore.begins_without_waiting`)."""
        unit = Unit([])
        # Without the keyword when waiting: stores written before it keep working.
        with self.store.unit_of_work() if wait else self.store.unit_of_work(wait=False):
            yield unit

    # -- queries -----------------------------------------------------------------------

    def get(self, order_id: str, *, principal: Principal) -> Order:
        """The order, if ``principal`` may see it; otherwise the same 404 as for an order
        that does not exist, so ids of other callers' orders cannot be probed."""
        order = self.store.get(order_id)
        if order is None or not principal.may_access(order.owner):
            raise NotFound(f"no order {order_id!r}")
        return order

    def list_by_customer(
        self,
        customer_id: str,
        *,
        principal: Principal,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """A customer's orders that ``principal`` may see (all of them for an admin)."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        owner = None if principal.lists_everything else principal.id
        return self.store.list_by_customer(customer_id, limit=limit, cursor=cursor, owner=owner)

    # -- commands ----------------------------------------------------------------------

    def handle(
        self,
        command: Command,
        *,
        principal: Principal = ANONYMOUS,
        idempotency_key: IdempotencyKey | None = None,
        deadline: Deadline | None = None,
        unit: Unit | None = None,
    ) -> CommandResult:
        """Run ``command`` once, whatever number of times it is delivered.

        ``idempotency_key`` is the caller's key (:func:`~orders_core.application.http_key`)
        or :func:`~orders_core.application.event_key` of the CloudEvent; None means the
        command is not deduplicated (an HTTP request without ``Idempotency-Key``). It is
        scoped by ``principal``, who must also own the order a transition targets. ``unit``
        is the :meth:`unit_of_work` this command joins, which records it when it commits.
        """
        deadline = deadline or Deadline.never()
        deadline.check("start the command")
        try:
            spec = self.commands[command.type]
        except KeyError:
            raise ValidationFailed(
                f"unknown command type {command.type!r}",
                [FieldError("/type", f"expected one of {sorted(self.commands)}")],
            ) from None
        _check_text(command, principal)
        payload = validate_payload(spec.payload, command.data)
        started = time.perf_counter()
        conflict: str | None = None
        result: CommandResult | None = None
        if not telemetry.sdk_configured():  # the common, untraced path: no span machinery
            try:
                result = self._run(
                    command, payload, spec, principal, idempotency_key, deadline, unit
                )
            except tuple(_CONFLICT_KINDS) as exc:
                conflict = next(k for cls, k in _CONFLICT_KINDS.items() if isinstance(exc, cls))
                raise
            finally:
                self._measure(spec, started, result, conflict)
            telemetry.order_id.set(result.order_id)
            return result
        attributes: dict[str, Any] = {
            "orders.command.type": command.type,
            "cloudevents.event_id": command.id,
            "cloudevents.event_source": command.source,
        }
        try:
            with telemetry.command_span(
                f"orders.command {command.type}",
                traceparent=command.traceparent,
                tracestate=command.tracestate,
                attributes=attributes,
            ) as span:
                result = self._run(
                    command, payload, spec, principal, idempotency_key, deadline, unit
                )
                span.set_attribute("orders.order_id", result.order_id)
                telemetry.order_id.set(result.order_id)
                span.set_attribute("orders.idempotent_replay", result.replayed)
                return result
        except tuple(_CONFLICT_KINDS) as exc:
            conflict = next(kind for cls, kind in _CONFLICT_KINDS.items() if isinstance(exc, cls))
            raise
        finally:
            self._measure(spec, started, result, conflict)

    @staticmethod
    def _measure(
        spec: CommandSpec, started: float, result: CommandResult | None, conflict: str | None
    ) -> None:
        if result is not None or conflict is not None:
            telemetry.METRICS.command(
                spec.type,
                time.perf_counter() - started,
                counter=spec.metric if result is not None else None,
                replayed=result is not None and result.replayed,
                conflict=conflict,
            )

    def _run(
        self,
        command: Command,
        payload: BaseModel,
        spec: CommandSpec,
        principal: Principal,
        idempotency_key: IdempotencyKey | None,
        deadline: Deadline,
        unit: Unit | None,
    ) -> CommandResult:
        key = fp = None
        generation = 0
        key_read = False
        if idempotency_key is not None:
            key = scoped_key(principal, idempotency_key)
            fp = fingerprint(command.type, payload.model_dump(mode="json", by_alias=True))

        traceparent, tracestate = telemetry.outgoing_context(
            command.traceparent, command.tracestate
        )

        def load(order_id: str) -> Order:
            return self.get(order_id, principal=principal)

        given, hint, command_id = idempotency_key, key_hint(idempotency_key), command.id
        if given is not None and hint is not None and command_id == given.parts[0]:
            command_id = hint  # an HTTP command's id is its caller's key: keep only the hint
        note = CommandNote(  # what a store that keeps history records with the change
            command.type,
            command_id,
            command.source,
            principal.kind,
            hint,
            None if given is None else given.namespace,
        )

        for attempt in range(1, self.max_attempts + 1):
            deadline.check("commit the command")
            now = self.clock()
            ids = self.ids if key is None else _constant(derived_order_id(key, generation))
            decision = Decision(load, ids, principal.id, now)
            try:
                order, based_on = spec.decide(payload, decision)
            except (InvalidTransition, PreconditionFailed):
                # A copy of this command committed first (at-least-once delivery): the order
                # moved on under its record. Replay that.
                if (winner := self._winner(key, fp)) is not None:
                    return winner
                raise
            if key is not None and fp is not None and based_on != 0 and not key_read:
                # A keyed change to an existing order reads its key before it commits: a
                # live record is replayed, an expired one gives the generation the change's
                # record must carry (a store that keeps one record per key writes it over
                # the old one; on DynamoDB the key's slot may be the very order the change
                # updates: decision 0002 says what skipping this read broke). A keyed
                # create does not read: its commit refuses a key in use (every store checks
                # the key in the write, see OrderStore.commit), and only then is the record
                # read. A first delivery, the usual case, is one round trip.
                key_read = True
                replay, moved = self._read_key(key, fp)
                if replay is not None:
                    return replay
                generation = generation if moved is None else moved
            status = 201 if based_on == 0 else 200
            body = order.to_json()
            record = None
            if key is not None and fp is not None:
                record = IdempotencyRecord(
                    key=key,
                    fingerprint=fp,
                    status=status,
                    body=body,
                    order_id=order.order_id,
                    version=order.version,
                    expires_at=now + self.idempotency_ttl,
                    generation=generation,
                )
            event = DomainEvent.for_order(
                order,
                type=spec.event_type,
                source=self.source,
                traceparent=traceparent,
                tracestate=tracestate,
                order_json=body,
            )
            change = Change(order, based_on, (event,), record, order_json=body, command=note)
            try:
                self.store.commit(change, now=now)
            except ConcurrencyConflict as conflict:
                if key is not None and fp is not None:
                    # The key is in use, or was: a duplicate committed first (replay its
                    # answer), the key was used for another request (422), or its record
                    # expired and the key moves on (_next_generation). A refusal may carry
                    # the record in its way: a live one needs no read.
                    found = conflict.record if isinstance(conflict, DuplicateRequest) else None
                    replay, moved = self._read_key(key, fp, found)
                    if replay is not None:
                        return replay
                    if based_on == 0 or isinstance(conflict, DuplicateRequest):
                        generation = generation if moved is None else moved
                        continue
                if isinstance(conflict, Contended):
                    # Another request's write held the item and may leave it as it was:
                    # decide again after a moment, instead of calling the order changed.
                    time.sleep(CONTENDED_WAIT * attempt * random.uniform(0.5, 1.5))
                    continue
                # Someone else changed the order since we read it. With If-Match the caller
                # asked for exactly that version: tell them. Otherwise decide again.
                if getattr(payload, "expected_version", None) is not None:
                    raise PreconditionFailed(
                        f"order {order.order_id} changed while this request ran"
                    ) from None
                log.debug("lost a race on %s, attempt %d", order.order_id, attempt)
            else:
                result = CommandResult(status, body, order.order_id, order.version)
                if unit is not None:
                    unit.committed.append(result)
                return result
        raise ConcurrencyConflict(
            f"order changed concurrently {self.max_attempts} times; retry the request"
        )

    def _winner(self, key: str | None, fp: str | None) -> CommandResult | None:
        """The answer a concurrent copy of this keyed command committed, if one did;
        raises IdempotencyKeyReused if the key's record holds another payload."""
        if key is None or fp is None:
            return None
        return self._read_key(key, fp)[0]

    def _read_key(
        self, key: str, fp: str, found: IdempotencyRecord | None = None
    ) -> tuple[CommandResult | None, int | None]:
        """The key's record, as a request with fingerprint ``fp`` must take it: the answer
        to replay if it is live (IdempotencyKeyReused if it holds another payload), else
        the generation the key moves on to (None when the key has no record). ``found``:
        the record a refused commit carried, used without asking the store when it must be
        the key's latest (:func:`_latest`)."""
        now = self.clock()
        if found is not None and found.key == key and _latest(found, now):
            live = replayable(found, fp, now)
            if live is not None:
                return CommandResult.replay_of(live), None
        previous = self.store.get_idempotency(key)
        record = replayable(previous, fp, self.clock())
        if record is not None:
            return CommandResult.replay_of(record), None
        return None, None if previous is None else _next_generation(previous)


def _unicode(text: str | None) -> bool:
    """Whether ``text`` is Unicode text every store can write: JSON allows a lone surrogate
    (``"\\ud800"``), which no UTF-8 encoder takes."""
    if text is None or text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_text(command: Command, principal: Principal) -> None:
    """Refuse, before anything is written, what a store could not write or index: the same
    400 on every store, not an encoder's 500 on some (a CloudEvent's attributes come from
    JSON; a principal's id from a token's claims)."""
    if not (_unicode(command.source) and _unicode(command.id) and _unicode(command.subject)):
        raise MalformedRequest("a command's source, id and subject must be Unicode text")
    owner = principal.id
    if (
        len(owner) > MAX_OWNER_BYTES
        or "\x00" in owner
        or not _unicode(owner)
        or (not owner.isascii() and len(owner.encode()) > MAX_OWNER_BYTES)
    ):
        raise MalformedRequest(
            f"the caller's identity cannot own an order: over {MAX_OWNER_BYTES} bytes, "
            "a NUL, or not Unicode text"
        )


def _latest(found: IdempotencyRecord, now: datetime) -> bool:
    """Whether a record found at its generation's slot is its key's latest. A keyed
    change's record is: it is replaced in place, and a key moves past it only after a
    create at its slot. A keyed create's order stays, so a later generation may exist once
    some instance saw its record expire: only a record with longer than CLOCK_SKEW to live
    by this instance's clock is sure to be the latest (an expired one never is)."""
    made = found.order_id == derived_order_id(found.key, found.generation)
    return not made or found.expires_at - now > CLOCK_SKEW


def _next_generation(expired: IdempotencyRecord) -> int:
    """The generation a request under a key takes once the key's record has expired: past
    the order a keyed create made under it (an order stays where it is), or the same one,
    whose record the new one replaces, when the record answered a change to an existing
    order. Stores whose records live at derived ids (DynamoDB's slots) rely on both."""
    made = expired.order_id == derived_order_id(expired.key, expired.generation)
    return expired.generation + 1 if made else expired.generation


def _constant(order_id: str) -> IdFactory:
    """The id factory of a keyed create: the id derives from the key, so copies of one
    create aim at one order, and a store may refuse the second on the order itself."""
    return lambda: order_id
