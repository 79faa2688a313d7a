"""The core's store on Firestore (Native mode): orders, outbox and idempotency records.

The layout is in :mod:`orders_gcp.documents`. One change is ONE atomic commit of
preconditioned writes, decided on ONE strongly consistent read of the documents it checks:

* read the order document and, for a keyed command, its idempotency record (``get_all``);
* refuse before writing: a live record is :class:`~orders_core.errors.DuplicateRequest`, an
  order not at ``expected_version`` (or existing, for a create) is
  :class:`~orders_core.errors.ConcurrencyConflict`;
* commit, all or nothing: the order (``create`` for a new one; for a transition ``update``
  preconditioned on the ``update_time`` read, so a writer that read an older version fails
  instead of overwriting a newer one), the record (``create``, or ``update`` on the expired
  one's ``update_time``) and one outbox document per event (``create``, at a fresh
  position).

Why a preconditioned batch and not a Firestore transaction: a transaction's reads take locks,
and N callers racing one order (the contract's 16) wait on each other's locks until the
server aborts them (~2 s each in the emulator: 33 s for 16 increments, against 0.07 s for 16
preconditioned commits). Preconditions give the same guarantee as DynamoDB's condition
expressions: exactly one racer wins, the others learn it at once.

A commit whose preconditions fail is judged by reading again: the order carrying this
commit's token means an earlier attempt landed (its answer was lost); a record now live is a
duplicate; an order that moved is a conflict; neither means an outbox position collided with
another commit's, and the change is tried again at new positions.

Outbox positions are int64: microseconds of the wall clock times 1024 plus 10 random bits,
raised above this process's last position and above the order's own ``lastPosition``, so an
order's events are in commit order however the instances' clocks differ (a transition reads
the order its predecessor wrote); across orders they are in commit order up to clock skew.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from orders_core.application import (
    ID_PATTERN,
    Backend,
    Change,
    IdempotencyRecord,
    OrderStore,
    Page,
    decode_cursor,
    encode_cursor,
)
from orders_core.domain import Order
from orders_core.errors import (
    ConcurrencyConflict,
    DuplicateRequest,
    MalformedRequest,
    StoreUnavailable,
)
from orders_gcp.calls import Refused, call, rpc_options
from orders_gcp.documents import (
    Collections,
    order_fields,
    order_from,
    outbox_fields,
    position_id,
    record_fields,
    record_from,
    transition_fields,
)
from orders_gcp.firestore_outbox import FirestoreOutbox

if TYPE_CHECKING:
    from google.cloud.firestore import Client, DocumentReference, DocumentSnapshot

    Snapshot = DocumentSnapshot[DocumentReference]

log = logging.getLogger("orders_gcp.firestore")

_ORDER_ID: Final = re.compile(ID_PATTERN)
COLLISION_ATTEMPTS: Final = 3
"""Commits of one change when only its outbox positions collided with another's."""
RANDOM_BITS: Final = 10


class FirestoreStore(FirestoreOutbox, OrderStore):
    """Thread-safe (the client is). ``client`` is injected; without one, a client for the
    environment's project (``FIRESTORE_EMULATOR_HOST`` points it at the emulator)."""

    def __init__(
        self,
        client: Client | None = None,
        *,
        prefix: str = "",
        timeout: float = 10.0,
        cursor_secret: bytes | None = None,
    ) -> None:
        if client is None:
            from google.cloud import firestore

            client = firestore.Client()
        self.client = client
        self.collections = Collections(prefix)
        self.timeout = timeout
        self.rpc = rpc_options(timeout)
        self._cursor_secret = cursor_secret
        self._last_position = 0
        self._lock = threading.Lock()

    # -- reads -------------------------------------------------------------------------

    def _order_ref(self, order_id: str) -> DocumentReference:
        return self.client.collection(self.collections.orders).document(order_id)

    def _record_ref(self, key: str) -> DocumentReference:
        return self.client.collection(self.collections.idempotency).document(key)

    def _read(self, refs: list[DocumentReference]) -> dict[str, Snapshot]:
        """Snapshots by path, in one round trip (``get_all`` answers in any order)."""
        snaps = call(lambda: list(self.client.get_all(refs, **self.rpc)), what="read documents")
        return {snap.reference.path: snap for snap in snaps}

    def get(self, order_id: str) -> Order | None:
        if not _ORDER_ID.match(order_id):  # no order has it; Firestore would refuse some
            return None  # ("__x__" is reserved, "." and ".." invalid): a 503 to retry for ever
        snap = call(lambda: self._order_ref(order_id).get(**self.rpc), what="read")
        return order_from(snap.to_dict() or {}) if snap.exists else None

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        snap = call(lambda: self._record_ref(key).get(**self.rpc), what="read")
        return record_from(key, snap.to_dict() or {}) if snap.exists else None

    def list_by_customer(
        self,
        customer_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Page:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.client.collection(self.collections.orders).where(
            filter=FieldFilter("customerId", "==", customer_id)
        )
        if owner is not None:
            query = query.where(filter=FieldFilter("owner", "==", owner))
        query = query.order_by("createdUs").order_by("orderId")
        if cursor is not None:
            position = decode_cursor(cursor, self._secret())
            try:
                after = {"createdUs": int(position["c"]), "orderId": str(position["id"])}
            except (KeyError, TypeError, ValueError):
                raise MalformedRequest("invalid pagination cursor") from None
            # The customer comes from the request, never from the cursor: a cursor cannot
            # open another customer's orders even if its secret leaked.
            query = query.start_after(after)
        query = query.limit(limit + 1)  # one more tells whether another page exists
        docs = call(lambda: list(query.stream(**self.rpc)), what="list orders")
        orders = [order_from(doc.to_dict() or {}) for doc in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            last = docs[limit - 1]
            next_cursor = encode_cursor(
                {"c": int(last.get("createdUs")), "id": str(last.get("orderId"))}, self._secret()
            )
        return Page(orders, next_cursor)

    # -- the commit --------------------------------------------------------------------

    def commit(self, change: Change, *, now: datetime) -> None:
        order, record = change.order, change.idempotency
        order_ref = self._order_ref(order.order_id)
        record_ref = self._record_ref(record.key) if record is not None else None
        token = uuid.uuid4().hex
        for _ in range(COLLISION_ATTEMPTS):
            read = self._read([order_ref] if record_ref is None else [order_ref, record_ref])
            order_snap = read[order_ref.path]
            record_snap = read[record_ref.path] if record_ref is not None else None
            self._check(change, order_snap, record_snap, now)
            writes = self._writes(change, order_snap, record_snap, token)
            try:
                call(partial(self._commit_writes, writes), what="commit a change", commit=True)
                return
            except Refused as refused:
                if self._judge(change, order_snap, record_snap, token, now, refused):
                    return
            log.info("outbox position taken by another commit; committing again")
        raise StoreUnavailable("the outbox kept colliding; try again")

    @staticmethod
    def _check(
        change: Change,
        order_snap: Snapshot,
        record_snap: Snapshot | None,
        now: datetime,
    ) -> None:
        """Refuse before writing: a live record first (as every store does), then the
        version."""
        if record_snap is not None and record_snap.exists:
            held = record_from(record_snap.id, record_snap.to_dict() or {})
            if not held.expired(now):
                raise DuplicateRequest("idempotency key already used")
        stored = order_snap.get("version") if order_snap.exists else 0
        if stored != change.expected_version:
            raise ConcurrencyConflict(
                f"order {change.order.order_id} is not at version {change.expected_version}"
            )

    def _writes(
        self,
        change: Change,
        order_snap: Snapshot,
        record_snap: Snapshot | None,
        token: str,
    ) -> list[tuple[str, DocumentReference, dict[str, Any], Any]]:
        """(kind, document, fields, update_time precondition) for each write of the change."""
        from google.cloud import firestore

        order, record = change.order, change.idempotency
        previous = int(order_snap.get("lastPosition") or 0) if order_snap.exists else 0
        positions = self._positions(len(change.events), previous)
        last = positions[-1] if positions else previous
        writes: list[tuple[str, DocumentReference, dict[str, Any], Any]] = []
        if not order_snap.exists:
            fields = order_fields(order, change.order_json, last, token)
            writes.append(("create", order_snap.reference, fields, None))
        else:
            fields = transition_fields(order, change.order_json, last, token)
            writes.append(("update", order_snap.reference, fields, order_snap.update_time))
        if record is not None and record_snap is not None:
            if record_snap.exists:  # expired (checked): replaced only as it was read
                writes.append(
                    (
                        "update",
                        record_snap.reference,
                        record_fields(record),
                        record_snap.update_time,
                    )
                )
            else:
                writes.append(("create", record_snap.reference, record_fields(record), None))
        outbox = self.client.collection(self.collections.outbox)
        for event, position in zip(change.events, positions, strict=True):
            fields = outbox_fields(event, position, firestore.SERVER_TIMESTAMP)
            writes.append(("create", outbox.document(position_id(position)), fields, None))
        return writes

    def _commit_writes(
        self, writes: list[tuple[str, DocumentReference, dict[str, Any], Any]]
    ) -> None:
        batch = self.client.batch()  # a fresh batch per attempt: a committed one is spent
        for kind, ref, fields, update_time in writes:
            if kind == "create":
                batch.create(ref, fields)
            else:
                batch.update(
                    ref, fields, option=self.client.write_option(last_update_time=update_time)
                )
        batch.commit(**self.rpc)

    def _judge(
        self,
        change: Change,
        order_snap: Snapshot,
        record_snap: Snapshot | None,
        token: str,
        now: datetime,
        refused: Refused,
    ) -> bool:
        """After refused preconditions: True if this commit landed after all; raises the
        core's error if another commit won; False if only outbox positions collided."""
        refs = [order_snap.reference] + ([record_snap.reference] if record_snap else [])
        again = self._read(refs)
        order_now = again[order_snap.reference.path]
        if order_now.exists and order_now.get("commit") == token:
            return True  # an earlier attempt of this very commit landed
        if record_snap is not None:
            record_now = again[record_snap.reference.path]
            if record_now.exists and record_now.update_time != record_snap.update_time:
                held = record_from(record_now.id, record_now.to_dict() or {})
                if not held.expired(now):
                    raise DuplicateRequest("idempotency key used concurrently") from refused
        if order_now.exists != order_snap.exists or (
            order_now.exists and order_now.update_time != order_snap.update_time
        ):
            raise ConcurrencyConflict(
                f"order {change.order.order_id} changed concurrently"
            ) from refused
        return False

    def _positions(self, count: int, after: int) -> list[int]:
        """``count`` fresh outbox positions, each above ``after`` and this process's last."""
        if count == 0:
            return []
        clock = time.time_ns() // 1000 << RANDOM_BITS | random.getrandbits(RANDOM_BITS)
        with self._lock:
            first = max(clock, after + 1, self._last_position + 1)
            self._last_position = first + count - 1
        return list(range(first, first + count))

    # -- plumbing ----------------------------------------------------------------------

    def _secret(self) -> bytes:
        """The cursor HMAC key, shared by every instance through the database (created by
        whichever asks first; lazily, so a cold start that never lists pays nothing)."""
        if self._cursor_secret is None:
            ref = self.client.collection(self.collections.meta).document("cursor")

            def create() -> None:
                batch = self.client.batch()
                batch.create(ref, {"secret": os.urandom(32)})
                batch.commit(**self.rpc)

            # If another instance created it first, its secret wins: read it back either way.
            with contextlib.suppress(Refused):
                call(create, what="create the cursor secret", commit=True)
            snap = call(lambda: ref.get(**self.rpc), what="read the cursor secret")
            self._cursor_secret = bytes(snap.get("secret"))
        return self._cursor_secret


def _setting(settings: Mapping[str, str], name: str, *env: str, default: str = "") -> str:
    value = settings.get(name, "")
    for variable in env:
        value = value or os.environ.get(variable, "")
    return value or default


def backend(settings: Mapping[str, str]) -> Backend:
    """The ``firestore`` backend (:data:`orders_core.application.BackendFactory`): the store
    and its outbox on one Firestore database.

    ``settings`` (each falls back to the environment): ``project`` (ORDERS_GCP_PROJECT,
    GOOGLE_CLOUD_PROJECT), ``database`` (ORDERS_GCP_DATABASE, default ``(default)``),
    ``prefix`` of the collection names (ORDERS_GCP_PREFIX). FIRESTORE_EMULATOR_HOST, when
    set, points the client at the emulator. The database is read once here, so a wrong
    project or a missing role fails at startup with a clear message.
    """
    project = _setting(settings, "project", "ORDERS_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT")
    database = _setting(settings, "database", "ORDERS_GCP_DATABASE", default="(default)")
    prefix = _setting(settings, "prefix", "ORDERS_GCP_PREFIX")
    try:
        from google.cloud import firestore
    except ImportError:  # pragma: no cover - depends on the install
        raise ValueError(
            "--store firestore needs the gcp extra: pip install 'orders-core[gcp]'"
        ) from None
    try:
        client = firestore.Client(project=project or None, database=database)
        store = FirestoreStore(client, prefix=prefix)
        store.get("-")  # one read: the project, database and role are good
    except Exception as exc:
        raise ValueError(
            f"cannot use Firestore database {database!r}: {type(exc).__name__}"
        ) from None
    where = os.environ.get("FIRESTORE_EMULATOR_HOST")
    describe = f"Firestore database {database} of project {client.project}"
    if where:
        describe += f" (emulator at {where})"
    close: Callable[[], None] = client.close
    return Backend(name="firestore", store=store, describe=describe, outbox=store, close=close)
