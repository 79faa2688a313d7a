"""The outbox relay: publishes committed events at least once, in commit order.

Events are published one by one in outbox order. The first failure stops the pass, so an
order's later events never overtake an earlier one that failed; that event is retried after
an exponentially growing, jittered pause, and nothing is dropped however long the sink is
down. Whatever is still pending at shutdown, or after a crash, is published after the next
start: the outbox is the only source of truth.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from orders_core import telemetry
from orders_core.ports import EventPublisher, Outbox

log = logging.getLogger("orders_local.relay")


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        publisher: EventPublisher,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.25,
        min_pass_interval: float = 0.02,
        backoff_base: float = 0.1,
        backoff_cap: float = 30.0,
        jitter: Callable[[], float] = random.random,
        destination: str = "orders-local",
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
        self._failures = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Publish one batch of pending events, in order; returns how many were delivered.

        A publish failure is recorded on the first undelivered event and ends the pass.
        A failed batch may be published again in part: delivery is at least once, and
        consumers deduplicate on the stable event ids.
        """
        batch = self.outbox.pending(self.batch_size)
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
        now = datetime.now(UTC)
        for entry in batch:
            telemetry.METRICS.relay_lag((now - entry.event.time).total_seconds())
        return len(batch)

    def backoff(self) -> float:
        """Seconds to wait before the next pass: 0 when healthy, else capped 2^n with
        equal jitter (half fixed, half random) so many relays do not retry in step."""
        if self._failures == 0:
            return 0.0
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** (self._failures - 1))
        return ceiling / 2 + self._jitter() * ceiling / 2

    def wake(self) -> None:
        """Ask for a pass now (after a commit), instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                delivered = self.run_once()
            except Exception:  # the store itself failed: keep the relay alive
                log.exception("relay pass failed")
                self._failures += 1
                delivered = 0
            pause = self.backoff() or (0.0 if delivered >= self.batch_size else self.poll_interval)
            if pause:
                self._wake.wait(pause)
                if self._failures == 0:
                    self._wake.clear()
                    # A wake comes with every commit: let a few more arrive and go out in
                    # one batch, instead of one pass (and one write transaction) each.
                    self._stopping.wait(self.min_pass_interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, *, flush: bool = True, timeout: float = 10.0) -> int:
        """Stop the thread; with ``flush``, deliver what is pending (within ``timeout``).

        Returns how many events remain undelivered.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if flush:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.outbox.pending(1):
                if self.run_once() == 0:
                    break  # the sink is failing: the rest waits for the next start
        return len(self.outbox.pending(self.batch_size))
