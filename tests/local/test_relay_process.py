"""The outbox relay in its own process: woken through its lifeline, stopped by closing it,
gone when the server dies, started again when it dies, and runnable on its own."""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orders_core.application import Change, event_for
from orders_core.domain import LineItem, Order
from orders_local import relay_process
from orders_local.relay_process import MarksThroughServer, RelayProcess
from orders_local.runtime import LocalConfig, LocalRuntime
from orders_local.sqlite import SQLiteStore
from tests.local.support import Client, ServerProcess
from tests.local.webhook import Webhook

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="the relay process needs a POSIX system"),
]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


def place(store: SQLiteStore, order_id: str) -> None:
    order = Order.place(order_id, [LineItem(sku="a", quantity=1)], None, NOW)
    store.commit(Change(order, 0, (event_for(order),)), now=NOW)


def published(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["subject"] for line in path.read_text().splitlines()]


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


def gone(pid: int) -> bool:
    """Exited (a zombie that init has not reaped yet counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_runtime_relays_through_its_own_process_by_default(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    rt = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0, sink=f"file:{out}"))
    assert isinstance(rt.relay, RelayProcess)
    rt.start()
    try:
        assert rt.relay.proc is not None
        assert rt.relay.proc.pid != os.getpid()
        client = Client(rt.server.server_address[1])
        order_id = client.request("POST", "/orders", SEED).json()["orderId"]
        client.close()
        eventually(lambda: published(out) == [order_id])
        eventually(lambda: rt.store.undelivered_count() == 0)  # marked by the server's loop
    finally:
        assert rt.stop() == 0


def test_a_wake_through_the_lifeline_starts_a_pass_at_once(
    tmp_path: Path, store: SQLiteStore
) -> None:
    out = tmp_path / "events.jsonl"
    relay = RelayProcess.for_store(store, f"file:{out}", poll_interval=600)  # no poll would come
    relay.start()
    try:
        time.sleep(1.5)  # started and past its first pass (an empty outbox)
        place(store, "o-1")
        relay.wake()
        eventually(lambda: published(out) == ["o-1"])
    finally:
        relay.stop()


def test_the_relay_reports_deliveries_and_the_server_marks_them(
    tmp_path: Path, store: SQLiteStore
) -> None:
    out = tmp_path / "events.jsonl"
    relay = RelayProcess.for_store(store, f"file:{out}", poll_interval=600)
    relay.start()
    try:
        time.sleep(1.5)  # started and past its first pass
        place(store, "o-1")
        place(store, "o-2")
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # nobody else may write now
        relay.wake()
        eventually(lambda: published(out) == ["o-1", "o-2"])  # it needed no write lock
        blocker.execute("ROLLBACK")
        blocker.close()
        time.sleep(0.5)
        assert store.undelivered_count() == 2  # the relay wrote nothing itself
        eventually(lambda: select.select([relay.marks_fd], [], [], 0)[0] != [])
        relay.apply_marks()  # what the server's loop does when the pipe is readable
        assert store.undelivered_count() == 0
        place(store, "o-3")
        relay.wake()
        eventually(lambda: published(out) == ["o-1", "o-2", "o-3"])  # reported ones skipped
    finally:
        assert relay.stop() == 0


def test_reports_are_marked_whole_lines_at_a_time(tmp_path: Path, store: SQLiteStore) -> None:
    for n in range(60):
        place(store, f"o-{n}")
    positions = [p.position for p in store.pending()]
    relay = RelayProcess.for_store(store, f"file:{tmp_path / 'events.jsonl'}")  # not started
    reports = MarksThroughServer(store, relay._marks_w)
    reports.mark_delivered(positions[:50])  # two lines
    assert [p.position for p in reports.pending()] == positions[50:]  # reported: skipped
    os.write(relay._marks_w, f"{positions[50]} {positions[51]}".encode())  # a line cut short
    relay.apply_marks()
    assert store.undelivered_count() == 10
    os.write(relay._marks_w, b"\n")
    relay.apply_marks()
    assert [p.position for p in store.pending()] == positions[52:]
    assert relay.stop() == 8


@pytest.mark.parametrize("how", ["lifeline", "SIGTERM"])
def test_a_stopped_relay_delivers_what_is_pending_first(
    tmp_path: Path, store: SQLiteStore, how: str
) -> None:
    """Stopped by the server (it closes the lifeline) or by a service manager that signals
    every process of the service (systemd's default KillMode)."""
    out = tmp_path / "events.jsonl"
    relay = RelayProcess.for_store(store, f"file:{out}", poll_interval=600)
    relay.start()
    assert relay.proc is not None
    time.sleep(1.5)  # started, its signal handlers set
    place(store, "o-1")
    place(store, "o-2")  # no wake: only the final pass can deliver these
    if how == "SIGTERM":
        relay.proc.send_signal(signal.SIGTERM)
        assert relay.proc.wait(20) == 0
    assert relay.stop(timeout=10) == 0
    assert relay.proc.returncode == 0
    assert published(out) == ["o-1", "o-2"]


def test_the_relay_stops_when_the_server_dies(tmp_path: Path, store: SQLiteStore) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from orders_local.relay_process import RelayProcess\n"
            "from orders_local.sqlite import SQLiteStore\n"
            "relay = RelayProcess.for_store(SQLiteStore(sys.argv[1]), 'file:' + sys.argv[2])\n"
            "relay.start()\n"
            "print(relay.proc.pid, flush=True)\n"
            "time.sleep(600)\n",
            str(store.path),
            str(tmp_path / "events.jsonl"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not gone(child)
    parent.send_signal(signal.SIGKILL)  # no chance to stop the relay in order
    parent.communicate(timeout=10)
    eventually(lambda: gone(child))


def test_a_relay_that_died_is_started_again(tmp_path: Path, store: SQLiteStore) -> None:
    out = tmp_path / "events.jsonl"
    relay = RelayProcess.for_store(store, f"file:{out}", poll_interval=600, restart_after=0.0)
    relay.start()
    try:
        assert relay.proc is not None
        first = relay.proc
        first.kill()
        first.wait(10)
        place(store, "o-1")
        relay.wake()  # notices the exit and starts a new relay, which looks at once
        assert relay.proc is not first
        eventually(lambda: published(out) == ["o-1"])
    finally:
        relay.stop()


def test_the_wait_between_starts_doubles_up_to_its_cap() -> None:
    assert [relay_process.restart_delay(n, 1.0, 60.0) for n in range(9)] == [
        1.0,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        60.0,
        60.0,
    ]
    assert relay_process.restart_delay(10**6, 1.0, 60.0) == 60.0  # no overflow


def serve_reports(relay: RelayProcess, seconds: float, *, commits: bool = False) -> None:
    """For ``seconds``, read the relay's reports as the server's loop does; ``commits``:
    and wake it between looks, as commits going on meanwhile do (none may raise)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([relay.marks_fd], [], [], 0.01)
        if readable:
            relay.apply_marks()
        if commits:
            relay.wake()


def run_a_relay_that_cannot_run(
    store: SQLiteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, seconds: float
) -> tuple[list[float], list[float]]:
    """A relay with no Python at all (`false`: it exits as soon as it starts), its reports
    read as the server's loop reads them, for ``seconds``. The times of its starts, and the
    waits it logged before each next one."""
    caplog.set_level(logging.ERROR, logger="orders_local.relay")
    relay = RelayProcess.for_store(
        store, f"file:{tmp_path / 'e.jsonl'}", python="false", restart_after=0.05, restart_cap=0.2
    )
    started: list[float] = []
    start = relay.start

    def timed_start() -> None:
        started.append(time.monotonic())
        start()

    relay.start = timed_start  # type: ignore[method-assign]
    relay.start()
    try:
        serve_reports(relay, seconds)
    finally:
        relay.stop(timeout=1)
    delays = [
        float(r.getMessage().rsplit(" in ", 1)[1].split()[0])
        for r in caplog.records
        if r.name == "orders_local.relay" and "starting it again in" in r.getMessage()
    ]
    return started, delays


def test_a_relay_that_cannot_run_is_tried_less_and_less_often(
    tmp_path: Path, store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Not started again once a second for ever: each quick exit doubles the wait, up to
    its cap, and the server goes on serving; the events wait in the outbox."""
    place(store, "o-1")
    started, delays = run_a_relay_that_cannot_run(store, tmp_path, caplog, 1.2)
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]  # doubled, then held at the cap
    assert set(delays[3:]) == {0.2}
    # Never sooner than the wait: each start came at least its delay after the one before.
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert len(gaps) >= 3
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=False))
    assert len(started) < 10  # a fixed 0.05 s wait would have started ~24
    assert store.undelivered_count() == 1


def test_a_relay_that_ran_a_while_is_started_again_after_the_first_wait(
    tmp_path: Path,
    store: SQLiteStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The doubling is for exits that follow their start closely; one that ran past
    RESTART_RESET (here 0 s: every run counts as long) starts the count again."""
    monkeypatch.setattr(relay_process, "RESTART_RESET", 0.0)
    started, delays = run_a_relay_that_cannot_run(store, tmp_path, caplog, 0.6)
    assert len(delays) >= 3
    assert set(delays) == {0.05}
    assert len(started) >= 3


def test_commits_do_not_start_a_relay_before_its_wait_is_over(
    tmp_path: Path, store: SQLiteStore
) -> None:
    """Every commit wakes the relay, and a dead relay shows as a broken pipe: without the
    wait, each commit would start a relay that cannot run."""
    relay = RelayProcess.for_store(
        store, f"file:{tmp_path / 'e.jsonl'}", python="false", restart_after=0.5, restart_cap=0.5
    )
    relay.start()
    try:
        assert relay.proc is not None
        relay.proc.wait(10)
        deadline = time.monotonic() + 0.3  # inside its 0.5 s wait
        while time.monotonic() < deadline:
            relay.wake()  # a commit
            time.sleep(0.005)
        assert relay.starts == 1
    finally:
        relay.stop(timeout=1)


def test_a_start_that_fails_is_tried_again_and_commits_meanwhile_are_answered(
    tmp_path: Path, store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart whose Popen fails (the interpreter gone under a running server, no file
    descriptors left) left no watcher and a closed lifeline: every later commit's wake
    raised ValueError (on the writer thread, ending it), and the relay never ran again."""
    caplog.set_level(logging.ERROR, logger="orders_local.relay")
    python = tmp_path / "python"
    false = shutil.which("false")
    assert false is not None
    shutil.copy(false, python)
    relay = RelayProcess.for_store(
        store,
        f"file:{tmp_path / 'e.jsonl'}",
        python=str(python),
        restart_after=0.05,
        restart_cap=0.05,
    )
    relay.start()
    python.unlink()  # from now on every start fails

    try:
        serve_reports(relay, 0.5, commits=True)
        assert relay.starts == 1
        failed = [r for r in caplog.records if "could not be started" in r.getMessage()]
        assert len(failed) >= 2  # tried again, with no commit needed
        shutil.copy(false, python)  # back
        serve_reports(relay, 0.5, commits=True)
        assert relay.starts > 1
    finally:
        relay.stop(timeout=1)


def test_two_threads_restarting_at_once_start_one_relay(tmp_path: Path, store: SQLiteStore) -> None:
    """The loop and the writer thread both wake the relay: two restarts at once started two
    children, one of which nothing would ever stop."""
    relay = RelayProcess.for_store(
        store, f"file:{tmp_path / 'e.jsonl'}", python="false", restart_after=0.0
    )
    relay.start()
    try:
        assert relay.proc is not None
        relay.proc.wait(10)
        eventually(lambda: relay._restart_at != float("inf"))
        relay.python = sys.executable  # the next relay runs: one start, and no more after it
        gate = threading.Barrier(8)

        def restart() -> None:
            gate.wait()
            relay.apply_marks()

        threads = [threading.Thread(target=restart) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert relay.starts == 2
    finally:
        relay.stop(timeout=1)


@pytest.mark.parametrize(
    ("code", "said"),
    [(1, "exited (code 1)"), (-9, "was killed by SIGKILL"), (-200, "was killed by signal 200")],
)
def test_the_log_says_how_the_relay_ended(code: int, said: str) -> None:
    assert relay_process._how_it_ended(code) == said


def relay_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orders_local.cli", "relay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_orders_local_relay_runs_alone_until_a_signal(tmp_path: Path, store: SQLiteStore) -> None:
    out = tmp_path / "events.jsonl"
    place(store, "o-1")  # waiting in the outbox, as after `serve --sink none`
    proc = relay_cli("--db", str(store.path), "--sink", f"file:{out}", "--poll-interval", "0.05")
    try:
        eventually(lambda: published(out) == ["o-1"])
        place(store, "o-2")  # nothing wakes it: its poll finds this one
        eventually(lambda: published(out) == ["o-1", "o-2"])
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert store.undelivered_count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sink", "none"], "nowhere to relay to"),
        (["--sink", "carrier-pigeon"], "unknown sink"),
        (["--db", "/nonexistent/o.db"], "no database at"),
    ],
)
def test_orders_local_relay_refuses_what_it_cannot_do(
    store: SQLiteStore, args: list[str], message: str
) -> None:
    proc = relay_cli("--db", str(store.path), *args)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert message in err
    assert "Traceback" not in err


def test_a_dead_relay_process_is_started_again_without_a_commit(tmp_path: Path) -> None:
    """Nothing may wait for a commit to notice the relay is gone: the outbox may hold events
    committed before it died, and no more may come."""
    out = tmp_path / "events.jsonl"
    rt = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0, sink=f"file:{out}"))
    assert isinstance(rt.relay, RelayProcess)
    rt.start()
    try:
        first = rt.relay.proc
        assert first is not None
        first.kill()
        other = SQLiteStore(rt.store.path)  # a commit the server never sees: no wake
        place(other, "o-1")
        other.close()
        eventually(lambda: published(out) == ["o-1"])
        assert rt.relay.proc is not first
    finally:
        assert rt.stop() == 0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rpartition(")")[2].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def test_a_relay_orphaned_by_a_server_sigkill_stops_at_its_first_failed_report(
    tmp_path: Path,
) -> None:
    """It published a batch the server will never mark; it must not publish it again and
    again, nor die loudly: it stops, and the next start sends what is left (once more)."""
    db = tmp_path / "o.db"
    hook = Webhook()
    hook.hold_first = True
    hook.open()
    try:
        server = ServerProcess("--db", str(db), "--sink", f"webhook:{hook.url}")
        client = server.client()
        ids = [client.request("POST", "/orders", SEED).json()["orderId"] for _ in range(3)]
        client.close()
        assert hook.holding.wait(20)  # the relay is publishing the first event
        (relay_pid,) = children(server.proc.pid)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        hook.release.set()  # delivered; its report now goes to a pipe nobody reads
        err = server.output(timeout=30)  # the relay held stderr: it has exited
        eventually(lambda: gone(relay_pid))
        assert "Traceback" not in err, err
        assert "BrokenPipe" not in err, err
        counts = {f"{i}.v1": hook.received().count(f"{i}.v1") for i in ids}
        assert max(counts.values()) <= 1, counts  # no republishing loop

        restarted = ServerProcess("--db", str(db), "--sink", f"webhook:{hook.url}")
        try:
            eventually(lambda: set(counts) <= set(hook.received()))
        finally:
            assert restarted.stop()[0] == 0
        received = hook.received()
        assert all(1 <= received.count(ce_id) <= 2 for ce_id in counts), received
    finally:
        hook.close()


def test_a_relay_that_cannot_open_its_database_closes_its_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orders_local import cli, runtime, sinks
    from orders_local import sqlite as sqlite_module

    db = tmp_path / "o.db"
    SQLiteStore(db).close()
    closed: list[bool] = []

    class Sink:
        def publish(self, events: object) -> None:
            raise AssertionError("nothing may be published")

        def close(self) -> None:
            closed.append(True)

    class Unopenable(SQLiteStore):
        def __init__(self, path: Path, **options: object) -> None:
            raise sqlite3.DatabaseError("file is not a database")

    monkeypatch.setattr(sinks, "sink_from_spec", lambda spec: Sink())
    monkeypatch.setattr(sqlite_module, "SQLiteStore", Unopenable)
    monkeypatch.setattr(runtime, "configure_logging", lambda: None)  # the test's logging stays
    assert cli.main(["relay", "--db", str(db), "--sink", "stdout"]) != 0
    assert closed == [True]


def child_argv(relay: RelayProcess) -> list[bytes]:
    assert relay.proc is not None
    with open(f"/proc/{relay.proc.pid}/cmdline", "rb") as cmdline:
        return cmdline.read().split(b"\0")


@pytest.mark.parametrize("mode", ["NORMAL", "FULL"])
@pytest.mark.parametrize("given", ["config", "backend"])
def test_the_relay_child_writes_at_the_servers_durability(
    tmp_path: Path, mode: str, given: str
) -> None:
    """The child records failed attempts itself: with `serve --synchronous FULL` it opened
    the file at NORMAL whatever the server said. A runtime given a backend takes the
    store's own setting (embedding code may not set the config's)."""
    from orders_local.backends import open_backend

    db, sink = tmp_path / "o.db", f"file:{tmp_path / 'e'}"
    if given == "config":
        rt = LocalRuntime(LocalConfig(db=db, port=0, sink=sink, synchronous=mode))
    else:
        backend = open_backend("sqlite", {"db": str(db), "synchronous": mode})
        rt = LocalRuntime(LocalConfig(db=db, port=0, sink=sink), backend=backend)
    assert isinstance(rt.relay, RelayProcess)
    rt.start()
    try:
        argv = child_argv(rt.relay)
        assert argv[argv.index(b"--synchronous") + 1] == mode.encode()
    finally:
        rt.stop()


def test_orders_local_relay_takes_a_durability_and_refuses_a_bad_one(
    store: SQLiteStore,
) -> None:
    from orders_local.arguments import build_parser

    parser = build_parser()
    assert parser.parse_args(["relay", "--synchronous", "full"]).synchronous == "FULL"
    given = relay_cli("--db", str(store.path), "--sink", "stdout", "--synchronous", "full")
    try:
        assert given.stderr is not None
        line = given.stderr.readline()  # the startup line names the file as opened
        assert "synchronous FULL" in line, line
    finally:
        given.send_signal(signal.SIGTERM)
        given.communicate(timeout=20)
    assert given.returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "orders_local.cli", "relay", "--db", str(store.path)],
        env={**os.environ, "ORDERS_LOCAL_SYNCHRONOUS": "sometimes"},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2
    assert "ORDERS_LOCAL_SYNCHRONOUS" in proc.stderr
    assert "Traceback" not in proc.stderr
