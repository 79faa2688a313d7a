"""What the HTTP front end must do on the wire, beyond the API's answers: pipelining,
Expect: 100-continue, read timeouts, HTTP/1.0, draining on shutdown, and answers held until
their unit of work commits. The runtime's tests run its front end (the ASGI app on uvicorn);
the group-commit tests run the app on uvicorn with the lanes the runtime would give it."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orders_core.application import OrderService
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.edges.lanes import GroupCommitLanes, ThreadLanes
from orders_core.errors import StoreUnavailable
from orders_core.testing.memory import InMemoryStore
from orders_local.runtime import LocalConfig, LocalRuntime
from orders_local.sinks import CallbackSink
from orders_local.uvicorn_server import UvicornServer
from tests.local.support import Collected, ServerProcess

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


def post(body: bytes = SEED, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST /orders " + version + b"\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


def read_responses(sock: socket.socket, count: int, timeout: float = 10) -> list[bytes]:
    """``count`` whole responses (head + Content-Length body) from ``sock``."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            at = head.find(b"content-length: ")
            length = int(head[at + 16 :].split(b"\r\n")[0]) if at >= 0 else 0
            if len(buf) >= end + 4 + length:
                out.append(buf[: end + 4 + length])
                buf = buf[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return out


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[LocalRuntime]:
    config = LocalConfig(db=tmp_path / "o.db", port=0, sink="callback", read_timeout=0.5)
    runtime = LocalRuntime(config, publisher=CallbackSink(Collected()))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop(timeout=5)


def connect(rt: LocalRuntime) -> socket.socket:
    return socket.create_connection(("127.0.0.1", rt.server.server_address[1]), timeout=10)


def test_pipelined_requests_are_answered_in_order(rt: LocalRuntime) -> None:
    with connect(rt) as sock:
        sock.sendall(post() + b"GET /orders/nope HTTP/1.1\r\nhost: x\r\n\r\n" + post())
        statuses = [r[9:12] for r in read_responses(sock, 3)]
    assert statuses == [b"201", b"404", b"201"]


def test_expect_100_continue_gets_the_interim_answer_first(rt: LocalRuntime) -> None:
    with connect(rt) as sock:
        sock.sendall(post(extra=b"expect: 100-continue\r\n")[: -len(SEED)])
        sock.settimeout(5)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(SEED)
        (reply,) = read_responses(sock, 1)
    assert reply.startswith(b"HTTP/1.1 201")


def test_a_silent_client_is_disconnected_after_the_read_timeout(rt: LocalRuntime) -> None:
    with connect(rt) as sock:
        sock.sendall(post()[:30])  # half a request line, then nothing
        started = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(100) == b""  # closed by the server
        waited = time.monotonic() - started
    assert 0.3 <= waited < 5


def test_a_body_split_across_packets_is_assembled(rt: LocalRuntime) -> None:
    request = post()
    with connect(rt) as sock:
        for i in range(0, len(request), 7):
            sock.sendall(request[i : i + 7])
            time.sleep(0.001)
        (reply,) = read_responses(sock, 1)
    assert reply.startswith(b"HTTP/1.1 201")


def test_http_1_0_closes_unless_keep_alive_is_asked(rt: LocalRuntime) -> None:
    with connect(rt) as sock:
        sock.sendall(post(version=b"HTTP/1.0"))
        (reply,) = read_responses(sock, 1)
        assert reply.startswith(b"HTTP/1.1 201")  # a server names its own version
        assert b"connection: close" in reply.lower()
        assert sock.recv(10) == b""
    with connect(rt) as sock:
        sock.sendall(post(version=b"HTTP/1.0", extra=b"connection: keep-alive\r\n") * 2)
        replies = read_responses(sock, 2)
    assert [r[9:12] for r in replies] == [b"201", b"201"]
    assert b"connection: keep-alive" in replies[0].lower()


def test_head_is_answered_as_get_without_a_body(rt: LocalRuntime) -> None:
    get_healthz = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    with connect(rt) as sock:
        sock.sendall(get_healthz)
        (get,) = read_responses(sock, 1)
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n" + get_healthz)
        buf = b""
        while buf.count(b"\r\n\r\n") < 2:  # HEAD's head, then the next answer's
            chunk = sock.recv(65536)
            assert chunk, buf
            buf += chunk
    head, after = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert after.startswith(b"HTTP/1.1 200")  # no body between HEAD's head and the next
    length = [f for f in get.lower().split(b"\r\n") if f.startswith(b"content-length:")]
    assert length[0] in head.lower().split(b"\r\n")


@pytest.mark.parametrize(
    ("asked", "told"),
    [(b"", b"close"), (b"connection: TE, Keep-Alive\r\n", b"keep-alive")],
    ids=["not-asked", "asked-in-a-list"],
)
def test_http_1_0_is_told_keep_alive_only_when_it_asked(
    rt: LocalRuntime, asked: bytes, told: bytes
) -> None:
    with connect(rt) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n" + asked + b"\r\n")
        (reply,) = read_responses(sock, 1)
    fields = [line for line in reply.lower().split(b"\r\n") if line.startswith(b"connection:")]
    assert fields == [b"connection: " + told]


def test_an_oversized_head_is_refused_with_431(rt: LocalRuntime) -> None:
    with connect(rt) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + b"x-a: " + b"b" * 200_000)
        (reply,) = read_responses(sock, 1)
    assert reply.startswith(b"HTTP/1.1 431")
    assert b"application/problem+json" in reply


def test_shutdown_finishes_a_begun_request_and_closes_idle_ones(tmp_path: Path) -> None:
    collected = Collected()
    config = LocalConfig(db=tmp_path / "o.db", port=0, sink="callback")
    runtime = LocalRuntime(config, publisher=CallbackSink(collected))
    runtime.start()
    idle = connect(runtime)
    busy = connect(runtime)
    request = post()
    busy.sendall(request[:-5])  # head and most of the body
    time.sleep(0.2)
    stopped: list[int] = []
    stopper = threading.Thread(target=lambda: stopped.append(runtime.stop(timeout=5)))
    stopper.start()
    time.sleep(0.3)
    idle.settimeout(5)
    assert idle.recv(10) == b""  # an idle keep-alive connection is closed at once
    assert stopper.is_alive()  # still waiting for the begun request
    busy.sendall(request[-5:])
    (reply,) = read_responses(busy, 1)
    stopper.join(10)
    assert reply.startswith(b"HTTP/1.1 201")
    assert b"connection: close" in reply.lower()
    assert stopped == [0]  # and its event was delivered before stop returned
    assert len(collected.events) == 1
    with pytest.raises(ConnectionRefusedError):
        connect(runtime)  # no longer accepting
    idle.close()
    busy.close()


def test_a_client_that_does_not_read_does_not_stall_others(rt: LocalRuntime) -> None:
    with connect(rt) as greedy, connect(rt) as other:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.sendall(b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n" * 200)  # never read
        time.sleep(0.3)
        other.sendall(post())
        (reply,) = read_responses(other, 1, timeout=5)
    assert reply.startswith(b"HTTP/1.1 201")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
def test_running_out_of_descriptors_neither_spins_nor_stays_down(tmp_path: Path) -> None:
    """The server under RLIMIT_NOFILE 64, sent more connections than it has descriptors for:
    accept() fails with EMFILE. uvicorn's accept loop is the event loop's (uvloop: libuv
    sheds the connections it cannot take; asyncio: pauses accepting a second), and neither
    may retry at once for ever. Once descriptors are free again, requests are served."""
    limit = 64

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    server = ServerProcess(
        "--db", str(tmp_path / "o.db"), "--sink", "none", "--read-timeout", "30",
        preexec=few_descriptors,
    )  # fmt: skip
    held: list[socket.socket] = []
    try:
        for _ in range(limit + 20):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)  # the connections it could take are open, the rest refused or queued
        before = _cpu_seconds(server.proc.pid)
        time.sleep(2)
        assert _cpu_seconds(server.proc.pid) - before < 0.5  # a busy loop would take ~2 s
        for sock in held:
            sock.close()
        held.clear()
        client = server.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.request("POST", "/orders", SEED).status == 201
                break
            except OSError:  # a connection shed while it still could not accept
                if time.monotonic() > deadline:
                    raise
                client.close()
                time.sleep(0.2)
        client.close()
        assert server.proc.poll() is None
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_a_blank_query_value_is_seen_not_dropped(rt: LocalRuntime) -> None:
    with connect(rt) as sock:
        sock.sendall(b"GET /orders?customerId=c-1&limit= HTTP/1.1\r\nhost: x\r\n\r\n")
        (reply,) = read_responses(sock, 1)
    assert reply.startswith(b"HTTP/1.1 400")  # limit= is not "no limit"


# -- each turn's answers in one unit of work (group commit) -------------------------------


def test_a_pipelined_read_sees_the_write_answered_before_it(rt: LocalRuntime) -> None:
    """A create, its read and its confirm sent at once are answered in one turn, inside one
    unit of work: the read and the confirm must see the create (read-your-writes)."""
    from orders_core.application import ANONYMOUS, derived_order_id, http_key, scoped_key

    order_id = derived_order_id(scoped_key(ANONYMOUS, http_key("k-1")), 0)
    confirm = (
        f'POST /orders/{order_id}/confirm HTTP/1.1\r\nhost: x\r\nif-match: "1"\r\n\r\n'
    ).encode()
    with connect(rt) as sock:
        sock.sendall(
            post(extra=b"idempotency-key: k-1\r\n")
            + f"GET /orders/{order_id} HTTP/1.1\r\nhost: x\r\n\r\n".encode()
            + confirm
        )
        statuses = [r[9:12] for r in read_responses(sock, 3)]
    assert statuses == [b"201", b"200", b"200"]
    assert rt.store.get(order_id).version == 2  # type: ignore[union-attr]


class GatedUnit:
    """A unit of work for the server under test: its end waits for ``release``, then
    commits or fails as told."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = False
        self.ended = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        yield
        self.entered.set()
        assert self.release.wait(10)
        self.ended += 1
        if self.fail:
            raise StoreUnavailable("commit failed")


class GatedStore(InMemoryStore):
    """A store that groups commits, through a gated unit."""

    groups_commits = True

    def __init__(self, unit: GatedUnit) -> None:
        super().__init__()
        self.gate = unit

    def unit_of_work(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return self.gate()


def make_server(
    api: HttpApi, on_commit: Callable[[], None], *, group_commit: bool
) -> UvicornServer:
    """The ASGI app on uvicorn with the lanes the runtime would use."""
    lanes = (
        GroupCommitLanes(api, on_commit=on_commit)
        if group_commit
        else ThreadLanes(api, on_commit=on_commit)
    )
    app = create_app(api, lanes, access_log=logging.getLogger("orders_local.access"))
    return UvicornServer(("127.0.0.1", 0), app)


@pytest.fixture
def gated() -> Iterator[tuple[UvicornServer, GatedUnit, list[int]]]:
    unit = GatedUnit()
    wakes: list[int] = []
    server = make_server(
        HttpApi(OrderService(GatedStore(unit))),
        lambda: wakes.append(1),
        group_commit=True,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server, unit, wakes
    finally:
        unit.release.set()
        server.shutdown(5)
        server.server_close()
        thread.join(10)


def gated_connect(server: UvicornServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)


def test_no_answer_leaves_before_its_turn_commits(
    gated: tuple[UvicornServer, GatedUnit, list[int]],
) -> None:
    server, unit, wakes = gated
    with gated_connect(server) as sock:
        sock.sendall(post())
        assert unit.entered.wait(10)  # the answer exists; the commit is held
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        assert wakes == []  # nor is the relay woken for an uncommitted event
        unit.release.set()
        (reply,) = read_responses(sock, 1)
    assert reply.startswith(b"HTTP/1.1 201")
    deadline = time.monotonic() + 5
    while not wakes and time.monotonic() < deadline:  # woken once the answers are out
        time.sleep(0.01)
    assert wakes == [1]


def test_a_failed_commit_turns_the_turns_answers_into_503(
    gated: tuple[UvicornServer, GatedUnit, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    server, unit, wakes = gated
    unit.fail = True
    unit.release.set()
    with caplog.at_level(logging.INFO, logger="orders_local.access"):
        with gated_connect(server) as sock:
            sock.sendall(post() + post())  # both answered in the turn that fails
            replies = read_responses(sock, 3)
            assert sock.recv(100) == b""  # then the connection closes
        server.shutdown(5)  # the turn, and its log lines, are over
    assert len(replies) == 1
    assert replies[0].startswith(b"HTTP/1.1 503")
    assert b"connection: close" in replies[0].lower()
    assert b"store-unavailable" in replies[0]
    assert wakes == []
    # The access log says what the client got, not what the uncommitted turn would have:
    # uvicorn starts the second POST only after the first's answer, which closed the
    # connection (a front end answering both in the failed turn would log two 503s).
    lines = [r.__dict__ for r in caplog.records if r.name == "orders_local.access"]
    assert lines
    assert [(line["method"], line["status"]) for line in lines] == [("POST", 503)] * len(lines)
    assert all("orderId" not in line for line in lines)


@pytest.mark.parametrize("group_commit", [False, True], ids=["per-request", "per-turn"])
def test_the_relay_is_woken_for_what_was_committed_not_for_replays(group_commit: bool) -> None:
    """The unit of work says what a turn committed: a replayed keyed POST (201 again) and a
    refused one commit nothing, so they wake nobody."""
    wakes: list[int] = []
    server = make_server(
        HttpApi(OrderService(InMemoryStore())),
        lambda: wakes.append(1),
        group_commit=group_commit,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        with gated_connect(server) as sock:
            key = b"idempotency-key: k-1\r\n"
            sock.sendall(post(extra=key))
            (first,) = read_responses(sock, 1)
            deadline = time.monotonic() + 5
            while not wakes and time.monotonic() < deadline:
                time.sleep(0.01)
            sock.sendall(post(extra=key))
            (again,) = read_responses(sock, 1)
            sock.sendall(post(body=b'{"items":[]}'))
            (refused,) = read_responses(sock, 1)
        time.sleep(0.2)  # a wake-up would have come by now
    finally:
        server.shutdown(5)
        server.server_close()
        thread.join(10)
    assert first.startswith(b"HTTP/1.1 201")
    assert again.startswith(b"HTTP/1.1 201")
    assert b"idempotent-replayed: true" in again.lower()
    assert refused.startswith(b"HTTP/1.1 422")
    assert wakes == [1]
