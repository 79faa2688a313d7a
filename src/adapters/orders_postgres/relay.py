"""One relay among replicas: the outbox as the elected relay sees it, and its wake-ups.

The core's :class:`~orders_core.application.OutboxRelay` does the relaying, as for SQLite; what
PostgreSQL adds is who may do it, and when to look (docs/decisions/0021):

* :class:`ElectedOutbox` is the store's outbox seen through one session that holds a
  session-level advisory lock. Every process with a relay (each ``serve`` replica or
  worker, any ``orders-local relay``) runs one; only the lock's holder sees pending
  events, the others see none and try for the lock again at most once per
  ``retry_interval``. The holder reads and marks on the locking session itself, so a relay
  whose session died (its lock released, maybe taken over) finds out on its next
  statement instead of publishing alongside the new holder. Exactly one relay publishes,
  in position order, which is commit order.
* :class:`CommitListener` LISTENs on the schema's channel (``apply_change`` notifies it;
  PostgreSQL delivers a notification only after its commit) and wakes the relay, so a
  commit made by another replica goes out in milliseconds; the relay's poll is the
  fallback for a notification missed while reconnecting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import psycopg

from orders_core.application import Outbox, PendingEvent
from orders_core.errors import StoreUnavailable
from orders_postgres.driver import Connection, translate

if TYPE_CHECKING:
    from orders_postgres.store import PostgresStore

log = logging.getLogger("orders_postgres.relay")

RETRY_INTERVAL: Final = 1.0
"""Seconds between a standby relay's tries for the lock: how soon it takes over."""
LISTEN_TIMEOUT: Final = 0.5
"""Seconds a listener waits for notifications before it checks whether to stop."""


class ElectedOutbox(Outbox):
    """The outbox of ``store``, visible to this process only while it holds the relay lock."""

    def __init__(self, store: PostgresStore, *, retry_interval: float = RETRY_INTERVAL) -> None:
        self.store = store
        self.retry_interval = retry_interval
        self._session: Connection | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()  # the relay's thread and a final pass may overlap
        self._closed = False

    @property
    def leading(self) -> bool:
        """Whether this process holds the relay lock (as of its last statement)."""
        return self._session is not None

    def _leader(self) -> Connection | None:
        """The locking session, trying for the lock if it is time to; None: not ours."""
        if self._session is not None or self._closed:
            return self._session
        now = time.monotonic()
        if now < self._next_try:
            return None
        self._next_try = now + self.retry_interval
        conn = self.store.database.connect()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.store.relay_lock,))
            held = bool(row.fetchone()[0])  # type: ignore[index]
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc) from exc
        if not held:
            conn.close()  # another process relays; no session kept while standing by
            return None
        log.info("this process now relays the outbox of schema %s", self.store.schema)
        self._session = conn
        return conn

    def _on_session(self, operation: Callable[[Connection], object]) -> object:
        with self._lock:
            session = self._leader()
            if session is None:
                return None
            try:
                return operation(session)
            except psycopg.Error as exc:
                if session.closed or session.broken:  # the lock went with the session
                    log.warning("lost the relay lock: %s", type(exc).__name__)
                    self._session = None
                    session.close()
                raise translate(exc) from exc

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        found = self._on_session(lambda conn: self.store.pending_on(conn, limit))
        return found if isinstance(found, list) else []

    def mark_delivered(self, positions: Sequence[int]) -> None:
        self._marks(lambda conn: self.store.mark_delivered_on(conn, positions))

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        self._marks(lambda conn: self.store.mark_failed_on(conn, positions, error))

    def _marks(self, operation: Callable[[Connection], None]) -> None:
        with self._lock:
            held = self._session is not None
        if not held:  # what it published was read under a lock since lost: say so
            raise StoreUnavailable("this process no longer holds the relay lock")
        self._on_session(operation)

    def undelivered_count(self) -> int:
        """Every replica's gauge reads the same table (a pooled connection)."""
        return self.store.undelivered_count()

    def close(self) -> None:
        """Release the lock (by ending its session), so a standby takes over at once."""
        with self._lock:
            self._closed = True
            if self._session is not None:
                self._session.close()
                self._session = None


class CommitListener:
    """A thread that calls each subscriber whenever the schema's channel is notified."""

    def __init__(self, store: PostgresStore, *, backoff_cap: float = 5.0) -> None:
        self.store = store
        self.backoff_cap = backoff_cap
        self._subscribers: list[Callable[[], None]] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while a LISTEN session is open (tests wait for it)."""

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` after commits anywhere in the schema; starts the thread once."""
        self._subscribers.append(wake)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        for wake in self._subscribers:  # one that raises must not end the others' wake-ups
            try:
                wake()
            except Exception:
                log.exception("a commit subscriber failed; it is called again on the next")

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                with self.store.database.connect() as conn:
                    conn.execute(f"LISTEN {self.store.channel}")
                    self.listening.set()
                    failures = 0
                    self._wake()  # whatever committed while nobody listened
                    while not self._stopped.is_set():
                        for _ in conn.notifies(timeout=LISTEN_TIMEOUT):
                            self._wake()
            except (psycopg.Error, StoreUnavailable) as exc:
                self.listening.clear()
                failures += 1
                log.info("LISTEN session lost (%s); reconnecting", type(exc).__name__)
                self._stopped.wait(min(self.backoff_cap, 0.1 * 2 ** min(failures, 6)))
        self.listening.clear()

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(LISTEN_TIMEOUT + 5)
