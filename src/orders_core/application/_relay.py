"""The outbox relay: publishes committed events at least once, in commit order.

Events are published one by one in outbox order. The first failure stops the pass, so an
order's later events never overtake an earlier one that failed; that event is retried after
an exponentially growing, jittered pause (capped, and never cut short by a commit's wake-up),
and nothing is dropped however long the sink is down. Whatever is still pending at shutdown,
or after a crash, is published after the next start: the outbox is the only source of truth
(docs/decisions/0009-relay-process.md).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, Protocol

from orders_core import telemetry
from orders_core.application._ports import CorruptEntry, EventPublisher, Outbox
from orders_core.domain import DomainEvent

log = logging.getLogger("orders_core.relay")

BACKOFF_BASE: Final = 0.1
"""Seconds of pause after a first failed attempt; each further one doubles it."""
BACKOFF_CAP: Final = 10.0
"""The longest pause between attempts: also how long a recovered sink may wait for the
first event after a long outage."""
RESTART_AFTER: Final = 1.0
"""Seconds before a relay loop that died of an unexpected error is run again."""
_MAX_EXPONENT: Final = 64
"""2.0**64 times any sane base is past any cap, and far from a float's range (2.0**1024
overflows, which a days-long outage reached)."""


def retry_delay(
    attempt: int, jitter: float, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Seconds to pause after ``attempt`` consecutive failures: ``base * 2**(attempt-1)``,
    capped, with equal jitter (half fixed, ``jitter`` in [0, 1] of the other half) so many
    relays do not retry in step. The exponent is capped first: finite for any attempt."""
    if attempt <= 0:
        return 0.0
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return ceiling / 2 + jitter * ceiling / 2


class Relay(Protocol):
    """What a runtime drives, wherever the relay runs (a thread here, a process of the
    local runtime's): started with the server, woken after each commit, stopped last."""

    def start(self) -> None: ...

    def wake(self) -> None:
        """Something was committed: look now rather than at the next poll."""

    def retry_now(self) -> None:
        """An operator asked for a failed event again (the console's redeliver, recorded in
        the outbox first): end the pause after a failure now."""

    def stop(self, *, timeout: float = 10.0) -> int:
        """Deliver what is pending (within ``timeout``), stop, and say how many events stay
        undelivered (they go out after the next start)."""


def record_lag(delivered: Iterable[DomainEvent], now: datetime | None = None) -> None:
    """Record each delivered event's lag (commit to accepted publication) on the
    ``orders.relay.lag`` histogram: every relay, whatever its outbox, measures it so."""
    now = datetime.now(UTC) if now is None else now
    for event in delivered:
        telemetry.METRICS.relay_lag((now - event.time).total_seconds())


class OutboxGone(Exception):
    """The outbox can take no more reports (the server a relay process reports to died):
    the relay stops, since all it publishes now would be published again after a restart."""


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        publisher: EventPublisher,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.25,
        min_pass_interval: float = 0.02,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        jitter: Callable[[], float] = random.random,
        destination: str = "orders-local",
        restart_after: float = RESTART_AFTER,
    ) -> None:
        self.destination = destination
        self.outbox = outbox
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.min_pass_interval = min_pass_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._jitter = jitter
        self.restart_after = restart_after
        self._failures = 0
        self._wake = threading.Event()
        self._retry = threading.Event()
        self._stopping = threading.Event()
        self.gone = threading.Event()
        """Set when the outbox refused a report (:class:`OutboxGone`): the relay stopped."""
        self._thread: threading.Thread | None = None

    def run_once(self, limit: int | None = None) -> int:
        """Publish one batch of pending events (``limit``, else ``batch_size``, at most), in
        order; returns how many were delivered.

        A publish failure is recorded on the first undelivered event and ends the pass.
        A failed batch may be published again in part: delivery is at least once, and
        consumers deduplicate on the stable event ids. Raises :class:`OutboxGone` when a
        delivery cannot be reported.
        """
        try:
            batch = self.outbox.pending(self.batch_size if limit is None else limit)
        except CorruptEntry as exc:
            return self._corrupt(exc)
        if not batch:
            self._failures = 0
            return 0
        try:
            with telemetry.publishing([e.event for e in batch], self.destination) as outgoing:
                self.publisher.publish(outgoing)
        except Exception as exc:
            # Sinks that publish one by one say how far they got; the rest is retried.
            done = getattr(exc, "delivered", 0)
            if done:
                self.outbox.mark_delivered([entry.position for entry in batch[:done]])
            failed = batch[done]
            self._failures += 1
            log.warning(
                "publish failed; will retry",
                extra={
                    "eventId": failed.event.id,
                    "attempt": failed.attempts + 1,
                    "error": type(exc).__name__,
                },
            )
            self.outbox.mark_failed([failed.position], f"{type(exc).__name__}: {exc}")
            return int(done)
        self._failures = 0
        self.outbox.mark_delivered([entry.position for entry in batch])
        record_lag(entry.event for entry in batch)
        return len(batch)

    def _corrupt(self, entry: CorruptEntry) -> int:
        """The first pending row cannot be read: count it as a failed attempt (its last
        error says why, for the console and ``orders-local events``) and back off, as after
        a failed publish. It is never skipped: the relay keeps commit order across all
        orders and never gives up on an event (decisions 0009, "per batch rather than per
        event", and 0019, "the relay never gives up ... it blocks the events after it"),
        so it holds back every later event, of any order, until an operator repairs it."""
        self._failures += 1
        log.error(
            "an outbox entry cannot be read; it holds back the events after it",
            extra={"position": entry.position, "error": entry.reason},
        )
        self.outbox.mark_failed([entry.position], f"corrupt record: {entry.reason}")
        return 0

    def backoff(self) -> float:
        """Seconds to wait before the next pass: 0 when healthy, else :func:`retry_delay`."""
        return retry_delay(
            self._failures, self._jitter(), base=self.backoff_base, cap=self.backoff_cap
        )

    def wake(self) -> None:
        """Ask for a pass now (after a commit), instead of at the next poll. While the sink
        is failing it changes nothing: the pause after a failure always runs out."""
        self._wake.set()

    def retry_now(self) -> None:
        """End the pause after a failure now: someone asked for the failed event again (a
        redelivery request, recorded in the outbox), which a commit never says. The pass
        starts from the first undelivered event, as every pass does, so the order of
        events holds; a pass that fails again pauses longer, as it would have."""
        self._retry.set()
        self._wake.set()

    def _run(self) -> None:
        """The thread: the loop, run again if it ever dies, so a bug delays events but
        never strands them until the next start."""
        while not self._stopping.is_set():
            try:
                self._loop()
            except Exception:
                log.exception("the relay loop failed; running it again")
                self._stopping.wait(self.restart_after)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a commit from here on asks for one more pass
            self._retry.clear()  # a retry asked for from here on ends the pause below
            try:
                delivered = self.run_once()
            except OutboxGone:
                self._gone()
                return
            except Exception:  # the store itself failed: keep the relay alive
                log.exception("relay pass failed")
                self._failures += 1
                delivered = 0
            if self._failures:
                # Only a stop or retry_now ends this pause: a commit says nothing about the
                # sink (stop() sets _retry too).
                self._retry.wait(self.backoff())
            elif delivered < self.batch_size and self._wake.wait(self.poll_interval):
                # A wake comes with every commit: let a few more arrive and go out in
                # one batch, instead of one pass (and one write transaction) each.
                self._stopping.wait(self.min_pass_interval)

    def _gone(self) -> None:
        if not self.gone.is_set():
            log.warning("the outbox takes no more reports (its server is gone); stopping")
        self.gone.set()
        self._stopping.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> int:
        """Stop the thread, then deliver what is pending, all within ``timeout``.

        No final pass while the thread is still in one (it would publish the same batch
        again), nor once the outbox is gone. The final pass sends batches sized to the
        time left, at the pace the last batch went (the first is one event), so a slow
        sink cannot hold it past the deadline by more than one event's publish; what is
        not sent stays pending for the next start. Returns how many events remain
        undelivered; never raises (a store that fails now is logged): the caller still
        has to close its sink and store.
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._retry.set()
        self._wake.set()
        flush = True
        if self._thread is not None:
            self._thread.join(timeout)
            flush = not self._thread.is_alive()
        size = 1
        while flush and not self.gone.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                done = self.run_once(size)
            except OutboxGone:
                self._gone()
                break
            except Exception:
                log.exception("the relay's final pass failed; the rest waits for the next start")
                break
            if done == 0:
                break  # nothing left, or the sink is failing: the rest waits
            now = time.monotonic()
            each = (now - started) / done
            size = (
                self.batch_size if each <= 0 else min(self.batch_size, int((deadline - now) / each))
            )
            if size < 1:
                break  # not even one more event fits: it waits for the next start
        return self._undelivered()

    def _undelivered(self) -> int:
        """What stays pending, as this relay sees it (a relay process skips what it has
        reported); counted in the store when the first pending row cannot be read."""
        try:
            return len(self.outbox.pending(self.batch_size))
        except CorruptEntry:
            return self.outbox.undelivered_count()
        except Exception:
            log.exception("cannot count the undelivered events")
            return 0
