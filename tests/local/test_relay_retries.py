"""The relay against a failing sink: capped, jittered backoff that no wake-up bypasses and no
outage length can overflow, a loop that survives its own bugs, delivery soon after the sink
recovers, only a 2xx counted as delivery, and a corrupt outbox row recorded as a failure that
holds back only what comes after it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import pytest

from orders_core.application import (
    BACKOFF_CAP,
    Change,
    EventPublisher,
    OutboxRelay,
    event_for,
    retry_delay,
)
from orders_core.domain import DomainEvent, LineItem, Order
from orders_local.relay_process import RelayProcess
from orders_local.sinks import CallbackSink, PublishFailed, WebhookSink
from orders_local.sqlite import SQLiteStore
from tests.local.webhook import Webhook

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MODES = [
    "thread",
    pytest.param(
        "process",
        marks=pytest.mark.skipif(os.name != "posix", reason="the relay process needs POSIX"),
    ),
]


def place(store: SQLiteStore, order_id: str) -> None:
    order = Order.place(order_id, [LineItem(sku="a", quantity=1)], None, NOW)
    store.commit(Change(order, 0, (event_for(order),)), now=NOW)


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


def attempts(store: SQLiteStore) -> int:
    return sum(int(str(e["attempts"])) for e in store.outbox_entries(pending_only=True))


@pytest.fixture
def hook() -> Iterator[Webhook]:
    h = Webhook()
    try:
        yield h
    finally:
        h.close()


def relay_for(mode: str, store: SQLiteStore, url: str, **kw: float) -> OutboxRelay | RelayProcess:
    if mode == "thread":
        return OutboxRelay(store, WebhookSink(url, timeout=2), **kw)
    return RelayProcess.for_store(store, f"webhook:{url}", **kw)


def test_the_backoff_is_capped_jittered_and_finite_at_any_attempt() -> None:
    """Days of outage are ~10**5 attempts; 2.0**1024 alone overflows a float."""
    assert retry_delay(1, 0.0, base=0.1, cap=BACKOFF_CAP) == pytest.approx(0.05)
    assert retry_delay(1, 1.0, base=0.1, cap=BACKOFF_CAP) == pytest.approx(0.1)
    assert retry_delay(0, 1.0) == 0.0  # no failure, no pause
    previous = 0.0
    for attempt in (1, 2, 3, 5, 10, 64, 1024, 1025, 10**4, 10**6, 10**18):
        low, high = retry_delay(attempt, 0.0), retry_delay(attempt, 1.0)  # the production cap
        assert previous <= low <= high <= BACKOFF_CAP
        assert high == pytest.approx(2 * low)  # equal jitter: half fixed, half random
        previous = low
    assert retry_delay(10**6, 0.0) == BACKOFF_CAP / 2
    assert retry_delay(10**6, 1.0) == BACKOFF_CAP
    assert retry_delay(10**6, 1.0, base=0.1, cap=1.0) == 1.0


def test_the_relay_uses_the_production_cap_unless_told_otherwise(store: SQLiteStore) -> None:
    assert OutboxRelay(store, WebhookSink("http://127.0.0.1:9/")).backoff_cap == BACKOFF_CAP


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_wake_ups_during_an_outage_do_not_cut_the_backoff_short(
    store: SQLiteStore, hook: Webhook, mode: str
) -> None:
    """A commit wakes the relay, but says nothing about the sink: the pause still holds."""
    place(store, "o-0")
    relay = relay_for(mode, store, hook.url)  # the hook refuses every connection
    relay.start()
    try:
        eventually(lambda: attempts(store) >= 1)
        before = attempts(store)
        deadline = time.monotonic() + 2.0
        n = 0
        while time.monotonic() < deadline:  # a commit and a wake-up every 20 ms
            n += 1
            place(store, f"o-{n}")
            relay.wake()
            time.sleep(0.02)
        during = attempts(store) - before
    finally:
        relay.stop(timeout=2)
    # 0.1 s doubling with equal jitter allows at most 6 attempts in 2 s.
    assert during <= 12, f"{during} attempts in 2 s with {n} wake-ups"
    assert hook.received() == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_event_arrives_soon_after_a_long_outage(
    store: SQLiteStore, hook: Webhook, mode: str
) -> None:
    relay = relay_for(mode, store, hook.url, backoff_cap=1.0)
    relay.start()
    ids = []
    try:
        for n in range(7):  # commits throughout ~10 s of outage, each waking the relay
            place(store, f"o-{n}")
            ids.append(f"o-{n}.v1")
            relay.wake()
            time.sleep(1.4)
        assert attempts(store) >= 5  # it kept trying
        assert hook.received() == []
        hook.open()
        eventually(lambda: hook.received() == ids, timeout=8)  # ~1 s cap: a few seconds
    finally:
        relay.stop(timeout=5)


class FailsOnce(EventPublisher):
    def __init__(self) -> None:
        self.published: list[str] = []
        self.failed = False

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if not self.failed:
            self.failed = True
            raise PublishFailed("sink down")
        self.published.extend(e.id for e in events)


@pytest.mark.slow
def test_a_relay_loop_that_dies_is_started_again(store: SQLiteStore) -> None:
    """Whatever bug escapes a pass (once, it was an OverflowError in the backoff), events
    are delayed, never stranded until the next start."""
    calls = 0

    def jitter() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the loop itself")
        return 0.5

    sink = FailsOnce()
    relay = OutboxRelay(store, sink, jitter=jitter, poll_interval=0.05)
    place(store, "o-1")
    relay.start()
    try:
        eventually(lambda: sink.published == ["o-1.v1"])
    finally:
        relay.stop(timeout=2)
    assert calls == 1  # the bug did strike, and the loop outlived it


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    store: SQLiteStore, hook: Webhook, status: int
) -> None:
    """Only a 2xx is delivery (Knative's delivery contract); following a 301-303 turned the
    POST into a body-less GET that a 2xx then 'delivered'."""
    hook.status, hook.location = status, hook.url.replace("/hook", "/elsewhere")
    hook.open()
    place(store, "o-1")
    relay = OutboxRelay(store, WebhookSink(hook.url, timeout=5))
    assert relay.run_once() == 0
    (entry,) = store.outbox_entries()
    assert entry["deliveredAt"] is None
    assert entry["attempts"] == 1
    assert str(status) in str(entry["lastError"])
    assert hook.requests == [("POST", "/hook", "o-1.v1")]  # nothing went to the Location
    assert relay.run_once() == 0
    assert store.outbox_entries()[0]["attempts"] == 2  # still pending, tried again


def test_orders_local_relay_defaults_to_the_production_cap() -> None:
    from orders_local.arguments import build_parser

    assert build_parser().parse_args(["relay"]).backoff_cap == BACKOFF_CAP


def corrupt(store: SQLiteStore, order_id: str, record: str = "{not json") -> str:
    """Replace the order's outbox record (a damaged or hand-edited row); returns the old."""
    with sqlite3.connect(store.path) as conn:
        (old,) = conn.execute(
            "SELECT record FROM outbox WHERE order_id = ?", (order_id,)
        ).fetchone()
        conn.execute("UPDATE outbox SET record = ? WHERE order_id = ?", (record, order_id))
    return str(old)


def delivery_state(store: SQLiteStore, order_id: str) -> tuple[bool, int, str | None]:
    with sqlite3.connect(store.path) as conn:
        delivered, tries, error = conn.execute(
            "SELECT delivered_us, attempts, last_error FROM outbox WHERE order_id = ?",
            (order_id,),
        ).fetchone()
    return delivered is not None, tries, error


def test_a_corrupt_row_fails_alone_after_the_events_before_it_went_out(
    store: SQLiteStore,
) -> None:
    """One bad record used to fail the whole batch's decoding: nothing before it went out,
    and it was never recorded. Now it is a failed attempt that holds back what follows it
    (commit order), with a backoff, as a failed publish does."""
    for order_id in ("o-1", "o-2", "o-3", "o-4"):
        place(store, order_id)
    corrupt(store, "o-3")
    got: list[str] = []
    relay = OutboxRelay(store, CallbackSink(lambda e: got.append(e.subject)))
    assert relay.run_once() == 2
    assert relay.run_once() == 0
    assert got == ["o-1", "o-2"]
    delivered, tries, error = delivery_state(store, "o-3")
    assert (delivered, tries) == (False, 1)
    assert str(error).startswith("corrupt record: JSONDecodeError")
    assert relay.backoff() > 0
    assert delivery_state(store, "o-4") == (False, 0, None)  # waits behind it


@pytest.mark.parametrize("mode", MODES)
def test_a_corrupt_row_is_retried_with_backoff_not_in_a_loop(
    store: SQLiteStore, hook: Webhook, mode: str
) -> None:
    """...and once an operator repairs the row, it goes out."""
    hook.open()
    place(store, "o-1")
    good = corrupt(store, "o-1")
    relay = relay_for(mode, store, hook.url, backoff_cap=0.2)
    relay.start()
    try:
        eventually(lambda: delivery_state(store, "o-1")[1] >= 1)
        time.sleep(1.0)
        _, tries, error = delivery_state(store, "o-1")
        assert 1 <= tries <= 15  # ~0.1-0.2 s apart, not thousands
        assert str(error).startswith("corrupt record:")
        assert hook.requests == []
        corrupt(store, "o-1", good)
        eventually(lambda: hook.requests == [("POST", "/hook", "o-1.v1")])
    finally:
        relay.stop(timeout=2)


def test_stop_with_a_corrupt_row_pending_delivers_before_it_and_counts_it(
    store: SQLiteStore,
) -> None:
    """The final pass raised out of stop(), so LocalRuntime.stop never closed its sink and
    store and `serve` exited with a traceback; now stop() returns what stays pending."""
    place(store, "o-1")
    place(store, "o-2")
    corrupt(store, "o-2")
    got: list[str] = []
    relay = OutboxRelay(store, CallbackSink(lambda e: got.append(e.subject)), backoff_cap=0.05)
    relay.start()
    assert relay.stop(timeout=2) == 1
    assert got == ["o-1"]


def test_stop_keeps_to_its_timeout_with_a_slow_sink(store: SQLiteStore) -> None:
    """The final pass checked its deadline between batches only: 100 events to a sink taking
    0.1 s each held stop(timeout=1) 10 s. What it did not send stays pending."""
    for n in range(100):
        place(store, f"o-{n:03d}")
    got: list[str] = []

    def slow(event: DomainEvent) -> None:
        time.sleep(0.1)
        got.append(event.id)

    relay = OutboxRelay(store, CallbackSink(slow))  # not started: stop() is the final pass
    started = time.monotonic()
    left = relay.stop(timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert 5 <= len(got) <= 11
    assert left == 100 - len(got) == store.undelivered_count()
