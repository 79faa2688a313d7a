"""The ASGI app over the HTTP binding, driven with ASGI messages (no server, no sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orders_core.application import OrderService
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.edges.lanes import GroupCommitLanes, ThreadLanes, lanes_for
from orders_core.errors import StoreUnavailable
from orders_core.telemetry import JsonLogFormatter
from orders_core.testing import InMemoryStore

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Any:
    return {"type": "http", "method": method, "path": path, "headers": headers,
            "query_string": query}  # fmt: skip


async def call(app: Any, sc: Any, chunks: list[bytes], *, stall: bool = False) -> list[Any]:
    """Run one request; ``chunks`` arrive as http.request messages (``stall``: then none)."""
    pending = list(chunks)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            if stall:
                await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(sc, receive, send)
    return sent


def status_of(sent: list[Any]) -> int:
    return int(sent[0]["status"])


def headers_of(sent: list[Any]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


@pytest.fixture
def app() -> Iterator[Any]:
    application = create_app(HttpApi(OrderService(InMemoryStore()), max_body=1024))
    application.startup()
    yield application
    application.shutdown()


def post(length: bytes | None = None, body: bytes = SEED, **extra: bytes) -> Any:
    headers = [(b"content-type", b"application/json")]
    headers.append((b"content-length", length if length is not None else str(len(body)).encode()))
    headers += [(k.replace("_", "-").encode(), v) for k, v in extra.items()]
    return scope("POST", "/orders", headers)


def test_the_seed_request_over_asgi(app: Any) -> None:
    sent = asyncio.run(call(app, post(x_request_id=b"req-1"), [SEED[:5], SEED[5:]]))
    assert status_of(sent) == 201
    assert json.loads(sent[1]["body"])["status"] == "PENDING"
    headers = headers_of(sent)
    assert headers[b"x-correlation-id"] == b"req-1"
    assert headers[b"content-length"] == str(len(sent[1]["body"])).encode()
    assert headers[b"location"].startswith(b"/orders/")


def test_head_sends_gets_head_with_an_empty_body(app: Any) -> None:
    get, head = (asyncio.run(call(app, scope(m, "/openapi.json", []), [])) for m in ("GET", "HEAD"))
    assert status_of(head) == status_of(get) == 200
    assert headers_of(head)[b"content-length"] == str(len(get[1]["body"])).encode()
    assert get[1]["body"]
    assert head[1]["body"] == b""


def test_a_hostile_request_id_is_replaced(app: Any) -> None:
    sent = asyncio.run(call(app, post(x_request_id=b"a b\x01"), [SEED]))
    assert headers_of(sent)[b"x-correlation-id"] not in (b"a b\x01", b"")


@pytest.mark.parametrize(
    ("length", "status"), [(b"2048", 413), ("\u00b2".encode("latin-1"), 400), (b"-1", 400)]
)
def test_content_length_is_checked_before_the_body_is_read(
    app: Any, length: bytes, status: int
) -> None:
    asked: list[int] = []

    async def run() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            asked.append(1)
            return {"type": "http.request", "body": b"x" * 2048, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(post(length=length), receive, send)
        return sent

    sent = asyncio.run(run())
    assert status_of(sent) == status
    assert headers_of(sent)[b"content-type"] == b"application/problem+json"
    assert headers_of(sent)[b"connection"] == b"close"  # the unread body must not be parsed
    assert asked == []


def test_a_body_longer_than_declared_stops_being_buffered(app: Any) -> None:
    sent = asyncio.run(call(app, post(length=b"10"), [b"x" * 600, b"x" * 600, b"never"]))
    assert status_of(sent) == 413


def test_chunked_is_refused_with_411(app: Any) -> None:
    sc = scope("POST", "/orders", [(b"transfer-encoding", b"chunked")])
    assert status_of(asyncio.run(call(app, sc, [SEED]))) == 411


def test_a_body_that_never_finishes_is_a_408(app: Any) -> None:
    app.body_timeout = 0.2
    sent = asyncio.run(call(app, post(), [SEED[:3]], stall=True))
    assert status_of(sent) == 408


def test_repeated_headers_are_joined_and_queries_parsed(app: Any) -> None:
    sc = scope("GET", "/orders", [(b"x-a", b"1")], query=b"customerId=c-1&limit=")
    sent = asyncio.run(call(app, sc, []))
    assert status_of(sent) == 400  # limit= is seen, not dropped
    assert b"limit" in sent[1]["body"]


def test_the_access_log_line(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="orders_core.access"):
        asyncio.run(call(app, post(traceparent=TP.encode(), x_request_id=b"r-9"), [SEED]))
    (record,) = [r for r in caplog.records if r.name == "orders_core.access"]
    line = json.loads(JsonLogFormatter().format(record))
    assert (line["method"], line["path"], line["status"]) == ("POST", "/orders", 201)
    assert line["correlationId"] == "r-9"
    assert line["traceId"] == TP.split("-")[1]
    assert line["orderId"]
    assert "durationMs" in line
    assert "sku-1" not in json.dumps(line)


def test_lifespan_starts_and_stops_the_lanes_and_hooks() -> None:
    calls: list[str] = []
    application = create_app(
        HttpApi(OrderService(InMemoryStore())),
        on_startup=[lambda: calls.append("up")],
        on_shutdown=[lambda: calls.append("down")],
    )
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(application({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["up", "down"]


def test_networked_stores_get_a_pool_and_grouping_stores_a_writer() -> None:
    assert isinstance(lanes_for(HttpApi(OrderService(InMemoryStore()))), ThreadLanes)

    class Grouping(InMemoryStore):
        groups_commits = True

    assert isinstance(lanes_for(HttpApi(OrderService(Grouping()))), GroupCommitLanes)


class Gate:
    """A store unit whose end waits for ``release``; it fails when ``fail`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.fail = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        yield
        assert self.release.wait(10)
        if self.fail:
            raise StoreUnavailable("commit failed")


def grouped(gate: Gate) -> HttpApi:
    class Gated(InMemoryStore):
        groups_commits = True

        def unit_of_work(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
            return gate()

    return HttpApi(OrderService(Gated()))


def test_writes_queued_behind_a_unit_share_the_next_one() -> None:
    gate = Gate()
    wakes: list[int] = []
    lanes = GroupCommitLanes(grouped(gate), on_commit=lambda: wakes.append(1))
    application = create_app(lanes.api, lanes)
    application.startup()

    async def many() -> list[list[Any]]:
        first = asyncio.ensure_future(call(application, post(), [SEED]))
        await asyncio.sleep(0.2)  # the writer holds the first unit open
        rest = [asyncio.ensure_future(call(application, post(), [SEED])) for _ in range(5)]
        await asyncio.sleep(0.2)
        assert not first.done()  # no answer before its unit ends
        gate.release.set()
        return [await first, *[await r for r in rest]]

    try:
        results = asyncio.run(many())
    finally:
        application.shutdown()
    assert [status_of(s) for s in results] == [201] * 6
    assert lanes.units == 2  # the five queued writes went in one transaction
    assert wakes == [1, 1]


def test_a_failed_commit_answers_its_batch_503_and_closes() -> None:
    gate = Gate()
    gate.fail = True
    gate.release.set()
    wakes: list[int] = []
    lanes = GroupCommitLanes(grouped(gate), on_commit=lambda: wakes.append(1))
    application = create_app(lanes.api, lanes)
    application.startup()
    try:
        sent = asyncio.run(call(application, post(), [SEED]))
    finally:
        application.shutdown()
    assert status_of(sent) == 503
    assert b"store-unavailable" in sent[1]["body"]
    assert headers_of(sent)[b"connection"] == b"close"
    assert wakes == []


class _MeetingStore(InMemoryStore):
    """Each commit waits until ``parties`` commits are in it at once (or 5 s, then fails):
    only store calls that overlap can pass, and ``peak`` is the most ever inside."""

    groups_commits = False

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.meeting = threading.Barrier(parties, timeout=5)
        self.inside = 0
        self.peak = 0
        self._count = threading.Lock()

    def commit(self, change: Any, *, now: Any) -> None:
        with self._count:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            self.meeting.wait()
            super().commit(change, now=now)
        finally:
            with self._count:
                self.inside -= 1


@pytest.mark.parametrize("threads", [2, 4])
def test_a_networked_stores_round_trips_overlap_up_to_the_thread_count(threads: int) -> None:
    """A request waiting on its store round trip holds up no other (issue 18, item 2): with
    one thread, or the loop making each call in turn, the meeting would never fill and
    every write would fail. Never more than ``threads`` at once: the pool is bounded."""
    store = _MeetingStore(parties=threads)
    api = HttpApi(OrderService(store))
    lanes = lanes_for(api, threads=threads)
    assert isinstance(lanes, ThreadLanes)
    app = create_app(api, lanes)
    app.startup()

    async def many() -> list[list[Any]]:
        return list(await asyncio.gather(*(call(app, post(), [SEED]) for _ in range(threads * 3))))

    try:
        answers = asyncio.run(many())
    finally:
        app.shutdown()
    assert [status_of(sent) for sent in answers] == [201] * (threads * 3)
    assert store.peak == threads


class _Hanging(InMemoryStore):
    """A networked store whose reads hang until ``release`` (a round trip that never ends)."""

    groups_commits = False

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.inside = threading.Event()

    def get(self, order_id: str) -> Any:
        self.inside.set()
        self.release.wait(8)
        return super().get(order_id)


class _HangingGrouped(_Hanging):
    groups_commits = True


@pytest.mark.parametrize("store_type", [_Hanging, _HangingGrouped], ids=["threads", "grouped"])
def test_stop_returns_within_its_timeout_while_a_store_call_hangs(
    store_type: type[_Hanging], caplog: pytest.LogCaptureFixture
) -> None:
    store = store_type()
    app = create_app(HttpApi(OrderService(store)))
    app.startup()
    reader = threading.Thread(
        target=asyncio.run, args=(call(app, scope("GET", "/orders/x", []), []),)
    )
    reader.start()
    try:
        assert store.inside.wait(5)  # the read is in its store call
        started = time.monotonic()
        app.lanes.stop(timeout=0.5)
        took = time.monotonic() - started
    finally:
        store.release.set()
        reader.join(10)
    assert took < 2, f"stop(timeout=0.5) took {took:.1f} s"
    assert "still in a call at shutdown" in caplog.text


@pytest.mark.parametrize("store_type", [_Hanging, _HangingGrouped], ids=["threads", "grouped"])
def test_a_request_stop_cancels_before_it_began_is_a_503(store_type: type[_Hanging]) -> None:
    """One read holds the only pool thread; the next waits its turn. ``stop`` cancels the
    waiting one: it is answered 503 (nothing ran), not ended in CancelledError, which a
    server answers 500."""
    store = store_type()
    api = HttpApi(OrderService(store))
    lanes = GroupCommitLanes(api, readers=1) if store.groups_commits else lanes_for(api, threads=1)
    app = create_app(api, lanes)
    app.startup()
    answers: list[list[Any]] = []

    async def two() -> None:
        first = asyncio.ensure_future(call(app, scope("GET", "/orders/x", []), []))
        while not store.inside.is_set():
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(call(app, scope("GET", "/orders/y", []), []))
        await asyncio.sleep(0.1)  # queued behind the first
        await asyncio.get_running_loop().run_in_executor(None, app.lanes.stop, 0.3)
        answers.append(await second)
        store.release.set()
        answers.append(await first)

    asyncio.run(two())
    assert status_of(answers[0]) == 503
