"""A request whose task is cancelled while its write waits in the writer thread's queue
(uvicorn cancels running tasks once ``timeout_graceful_shutdown`` is over; other servers on
a disconnect), with a store that does not begin without waiting (``on_loop=False``: every
grouping store but SQLite). Its answer went to a cancelled future: ``InvalidStateError``
killed the writer thread, the rest of its group was never answered, and every later write
was a 503 (helper-35's review)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from orders_core.application import OrderService
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.edges.lanes import GroupCommitLanes
from orders_core.testing import InMemoryStore

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


class _Gate:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.entered.set()
        assert self.release.wait(10)
        yield


class _GroupingStore(InMemoryStore):
    """Groups commits (one writer thread), but cannot begin without waiting."""

    groups_commits = True

    def __init__(self, gate: _Gate) -> None:
        super().__init__()
        self.gate = gate

    def unit_of_work(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return self.gate()


def _post() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/orders",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(SEED))],
        "query_string": b"",
    }


async def _call(app: Any) -> int:
    sent: list[Any] = []
    body = [SEED]

    async def receive() -> dict[str, Any]:
        if body:
            return {"type": "http.request", "body": body.pop(), "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_post(), receive, send)
    return int(sent[0]["status"])


def test_a_cancelled_queued_write_neither_kills_the_writer_nor_strands_its_group() -> None:
    gate = _Gate()
    lanes = GroupCommitLanes(HttpApi(OrderService(_GroupingStore(gate))))
    assert lanes.on_loop is False
    app = create_app(lanes.api, lanes)
    app.startup()

    async def scenario() -> tuple[int, int | None, int | None]:
        first = asyncio.ensure_future(_call(app))
        while not gate.entered.is_set():  # the writer holds the first unit open
            await asyncio.sleep(0.01)
        cancelled = asyncio.ensure_future(_call(app))
        behind = asyncio.ensure_future(_call(app))  # queued with it: the same next group
        await asyncio.sleep(0.1)
        cancelled.cancel()  # what uvicorn does once the graceful shutdown timeout is over
        await asyncio.sleep(0.1)
        gate.release.set()
        status_first = await first
        try:
            status_behind: int | None = await asyncio.wait_for(behind, 3)
        except TimeoutError:
            status_behind = None  # never answered: its future was never resolved
        try:
            status_later: int | None = await asyncio.wait_for(_call(app), 3)
        except TimeoutError:
            status_later = None
        return status_first, status_behind, status_later

    try:
        first, behind, later = asyncio.run(scenario())
    finally:
        app.shutdown(timeout=2)
    assert first == 201
    assert behind == 201, "the write queued beside the cancelled one was never answered"
    assert later == 201, "the writer thread died: every later write is refused"
