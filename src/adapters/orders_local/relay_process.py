"""The outbox relay in its own process, beside the HTTP server's (``orders-local relay``).

Why a process: in the server's process the relay thread took 17% of the server's
throughput at 16 connections (4,827 req/s without a relay, 3,999 with it, on
bench/local_http.py's load), more than its own CPU, because every blocking call it makes
hands the GIL back and forth with the loop thread. In its own process it runs on another
core. It reads the same SQLite file (WAL: readers never block the writer)
(docs/decisions/0009-relay-process.md).

The relay never writes to the file in the usual course: it reports the positions it
delivered over a second pipe, and the server marks them in its next turn's transaction.
The server stays the only writer, so neither waits for the other's write lock (SQLite's
busy handler sleeps in steps of 1 to 100 ms: with the relay marking deliveries itself it
fell ~3,300 events behind in 10 s at 16 connections, and the server's BEGIN waited 37 us on
average). Only a failed publish is recorded by the relay itself.

The server holds the write end of a pipe that is the relay's stdin, its lifeline: a byte
means "a commit happened, look now"; end of file means "stop": the relay delivers what is
pending (within its timeout) and exits. If the server dies, even by SIGKILL, the pipe
closes and the relay stops too, at the latest when its first report finds the marks pipe
closed (it publishes nothing more: the server that would mark it is gone). It runs in its
own session, so a Ctrl-C in the terminal reaches the server alone, which then stops the
relay in order. Delivery stays at least once either way: whatever was not marked delivered
goes out after the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from orders_core.application import Outbox, OutboxGone, PendingEvent
from orders_local.arguments import ENV, seconds_text

if TYPE_CHECKING:
    from orders_local.sqlite import SQLiteStore

log = logging.getLogger("orders_local.relay")

RESTART_AFTER: Final = 1.0
"""Seconds before a relay process that exited on its own is started again, the first time."""
RESTART_CAP: Final = 60.0
"""The longest wait between starts: each quick exit doubles the wait up to this."""
RESTART_RESET: Final = 30.0
"""A relay that ran this long before it exited is started again after :data:`RESTART_AFTER`."""


def restart_delay(
    quick_exits: int, first: float = RESTART_AFTER, cap: float = RESTART_CAP
) -> float:
    """Seconds to wait before the next start, after ``quick_exits`` exits in a row that each
    came less than :data:`RESTART_RESET` after its start: a relay that cannot run (a sink
    it cannot import, a file it cannot open) is tried less and less often, as a supervisor
    would, instead of once a second for ever; its events wait in the outbox meanwhile."""
    if quick_exits <= 1:
        return first
    return min(cap, first * 2.0 ** min(quick_exits - 1, 64))


class RelayProcess:
    """Starts, wakes and stops ``orders-local relay --lifeline`` for one database and sink.

    The same surface as :class:`~orders_core.application.OutboxRelay` (``start``, ``wake``,
    ``stop``), so the runtime uses either. A relay that exits on its own (a crash, a kill)
    is started again on the server's loop: a wake notices it, and so does the report a
    watcher thread sends when the process exits (an empty line on the marks pipe), so
    events committed before it died do not wait for another commit. The wait before a
    start doubles with each exit that came soon after its start (:func:`restart_delay`).
    """

    def __init__(
        self,
        outbox: Outbox,
        sink: str,
        *,
        file: str,
        poll_interval: float = 0.25,
        backoff_cap: float | None = None,
        backoff_base: float | None = None,
        python: str = sys.executable,
        restart_after: float = RESTART_AFTER,
        restart_cap: float = RESTART_CAP,
        synchronous: str = "NORMAL",
    ) -> None:
        """``synchronous``: the SQLite durability the child's own writes get (the failed
        attempts it records), the server's ``--synchronous``."""
        self.outbox = outbox
        self.file = file
        """The database the child opens (``orders-local relay --db``)."""
        self.sink = sink
        self.poll_interval = poll_interval
        self.backoff_cap = backoff_cap
        self.backoff_base = backoff_base
        self.python = python
        self.synchronous = synchronous
        self.restart_after = restart_after
        self.restart_cap = restart_cap
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        """Relay processes started (for tests)."""
        self._quick_exits = 0  # exits (or failed starts) in a row, each soon after its start
        self._restart_lock = threading.Lock()
        self._restart_at = float("inf")  # set by the watcher once the process has exited
        self._stopping = False
        self._stopped = threading.Event()
        self._fds_lock = threading.Lock()  # the watcher never writes to a closed descriptor
        # Delivery reports, one pipe for the runtime's life (every relay started writes to
        # it), read by the server's loop: see :meth:`apply_marks`.
        self.marks_fd, self._marks_w = os.pipe()
        os.set_blocking(self.marks_fd, False)
        self._partial = b""

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, arguments we built
            [
                self.python,
                "-c",
                _CHILD,
                "relay",
                "--store",  # said, not inherited: it relays this SQLite file
                "sqlite",
                "--db",
                self.file,
                "--synchronous",
                self.synchronous,
                "--sink",
                self.sink,
                "--poll-interval",
                seconds_text(self.poll_interval),  # str() would give 1e-05, which is refused
                *(
                    []
                    if self.backoff_cap is None
                    else ["--backoff-cap", seconds_text(self.backoff_cap)]
                ),
                *(
                    []
                    if self.backoff_base is None
                    else ["--backoff-base", seconds_text(self.backoff_base)]
                ),
                "--marks-fd",
                str(self._marks_w),
                "--lifeline",
                *_package_dirs(),
            ],
            stdin=subprocess.PIPE,
            env=relay_environment(),
            start_new_session=True,
            pass_fds=(self._marks_w,),
        )
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.starts += 1
        self._restart_at = float("inf")
        threading.Thread(
            target=self._watch, args=(self.proc, time.monotonic()), name="relay-watch", daemon=True
        ).start()

    def retry_now(self) -> None:
        """End the relay's pause after a failure now (a ``!`` on its lifeline)."""
        self._signal(RETRY)

    def _watch(self, proc: subprocess.Popen[bytes], started_at: float) -> None:
        """Wait for ``proc`` to exit; unless stopping, once a restart is due, wake the
        server's loop with an empty report, so that :meth:`apply_marks` starts a new one."""
        code = proc.wait()
        exited_at = time.monotonic()
        ran = exited_at - started_at
        self._quick_exits = 0 if ran >= RESTART_RESET else self._quick_exits + 1
        delay = restart_delay(max(1, self._quick_exits), self.restart_after, self.restart_cap)
        self._restart_at = exited_at + delay  # one watcher at a time, and no restart yet
        if self._stopped.is_set():
            return
        log.error(
            "the relay process %s after %.1f s; starting it again in %g s",
            _how_it_ended(code),
            ran,
            delay,
        )
        self._report_after(delay)

    def _report_after(self, delay: float) -> None:
        """In ``delay`` seconds, unless stopping, an empty report: the server's loop reads
        it and :meth:`apply_marks` starts the relay again, with no commit needed."""
        if self._stopped.wait(delay):
            return
        with self._fds_lock:
            if not self._stopped.is_set():
                os.write(self._marks_w, b"\n")

    def wake(self) -> None:
        """Ask for a pass now (after a commit); never blocks the caller.

        A relay that has exited shows as a broken pipe here (no poll per call: that was
        3% of the server's time at 4 connections).
        """
        self._signal(b"\n")

    def _signal(self, byte: bytes) -> None:
        if self.proc is None or self._stopping:
            return
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            os.write(stdin.fileno(), byte)
        except BlockingIOError:
            pass  # the pipe is full: enough wake-ups are queued
        except (BrokenPipeError, ValueError):  # it exited; or a restart closed the lifeline
            self._restart()  # and its start failed: this one tries again when that is due

    def _restart(self) -> None:
        # The loop and the writer thread both wake the relay and read its reports: one
        # restart at a time, and the other finds the new process running.
        if not self._restart_lock.acquire(blocking=False):
            return
        try:
            assert self.proc is not None
            # The watcher thread reaps the process: returncode, not poll() (which answers
            # None while another thread waits).
            if self.proc.returncode is None or time.monotonic() < self._restart_at:
                return  # still exiting, or its wait is not over: a later call tries again
            if self._stopping:
                return
            self._close_lifeline()
            self._read_marks()
            self._partial = b""  # the end of a line the dead relay was writing: never finished
            try:
                self.start()
            except (OSError, subprocess.SubprocessError) as exc:  # no interpreter, no fds
                self._quick_exits += 1
                delay = restart_delay(self._quick_exits, self.restart_after, self.restart_cap)
                self._restart_at = time.monotonic() + delay
                log.error(
                    "the relay process could not be started (%s); trying again in %g s",
                    exc,
                    delay,
                )
                threading.Thread(
                    target=self._report_after, args=(delay,), name="relay-retry", daemon=True
                ).start()
        finally:
            self._restart_lock.release()

    def apply_marks(self) -> None:
        """Mark delivered what the relay reported, and start a relay that has exited. The
        server calls this on its loop thread when the pipe is readable, inside the turn's
        unit of work, so the marks commit with the turn; if they are lost (a crash before
        that commit), those events go out again after the next start: delivery is at least
        once."""
        self._read_marks()
        if self.proc is not None and self.proc.returncode is not None and not self._stopping:
            self._restart()

    def _read_marks(self) -> None:
        data = self._partial
        while True:
            try:
                chunk = os.read(self.marks_fd, 65536)
            except BlockingIOError:
                break
            data += chunk
            if len(chunk) < 65536:
                break
        lines = data.split(b"\n")
        self._partial = lines.pop()  # the rest of a line a read cut off
        positions = [int(position) for line in lines for position in line.split()]
        if positions:
            self.outbox.mark_delivered(positions)

    @classmethod
    def for_store(cls, store: SQLiteStore, sink: str, **options: Any) -> RelayProcess:
        """A relay process for a SQLite store's own file, at its durability."""
        options.setdefault("synchronous", store.synchronous)
        return cls(store, sink, file=str(store.path), **options)

    def stop(self, *, timeout: float = 10.0) -> int:
        """Close the lifeline; the relay then delivers what is pending (within ``timeout``)
        and exits, or is killed if it outlives that by 5 s. Returns how many events remain
        undelivered (they go out after the next start)."""
        self._stopping = True
        self._stopped.set()
        proc = self.proc
        if proc is not None:
            self._close_lifeline()
            deadline = time.monotonic() + timeout + 5
            while proc.poll() is None:  # keep reading its reports: a full pipe would stall it
                if time.monotonic() > deadline:
                    log.error("the relay process did not stop in %.0f s; killing it", timeout + 5)
                    proc.kill()
                    proc.wait()
                    break
                self._read_marks()
                time.sleep(0.01)
        self._read_marks()  # the final pass's reports
        with self._fds_lock:
            os.close(self.marks_fd)
            os.close(self._marks_w)
        return self.outbox.undelivered_count()

    def _close_lifeline(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


_CHILD: Final = """
import sys
args = sys.argv[1:sys.argv.index("--lifeline") + 1]
sys.path.extend(p for p in sys.argv[len(args) + 1:] if p not in sys.path)
from orders_local.cli import main
sys.exit(main(args))
"""
"""The relay's entry: ``orders-local relay ... --lifeline``, able to import what the server
runs however the server found it (the directories follow ``--lifeline``; they go last on
``sys.path``, so an installed copy is not shadowed and nothing shadows the stdlib)."""


def relay_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The relay child's environment: the server's, without ORDERS_LOCAL_*. Its command line
    says all it needs, and its parser would still parse an inherited variable it has no
    option for on that line (``ORDERS_LOCAL_POOL_MIN=0`` with ``serve --pool-min 2``): a
    usage error at each start, and a relay restarted for ever, relaying nothing."""
    return {name: value for name, value in environ.items() if not name.startswith(ENV)}


def _how_it_ended(code: int) -> str:
    """``exited (code 1)``, or ``was killed by SIGKILL`` for a negative code."""
    if code >= 0:
        return f"exited (code {code})"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _package_dirs() -> list[str]:
    import orders_core
    import orders_local

    return list(
        dict.fromkeys(
            os.path.dirname(os.path.dirname(os.path.abspath(module.__file__ or "")))
            for module in (orders_local, orders_core)
        )
    )


class MarksThroughServer(Outbox):
    """The outbox as a relay process sees it: it reads pending events from the file and
    reports each delivery to the server over ``fd`` instead of writing it.

    It skips what it has reported (the server marks it on its next turn), and records a
    failed publish itself, the one write it makes (rare, and no hot path waits on it). A
    report the pipe refuses (the server died) raises :class:`OutboxGone`.
    """

    def __init__(self, store: SQLiteStore, fd: int) -> None:
        self.store = store
        self.fd = fd
        self._reported = 0

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        return self.store.pending(limit, after=self._reported)

    def mark_delivered(self, positions: Sequence[int]) -> None:
        if not positions:
            return
        for start in range(0, len(positions), _PER_LINE):
            line = " ".join(map(str, positions[start : start + _PER_LINE])) + "\n"
            try:
                os.write(self.fd, line.encode())  # within PIPE_BUF: written whole or not at all
            except BrokenPipeError:
                raise OutboxGone("the server reading delivery reports is gone") from None
        self._reported = max(self._reported, *positions)

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        self.store.mark_failed(positions, error)

    def undelivered_count(self) -> int:
        return self.store.undelivered_count()


_PER_LINE: Final = 25
"""Positions per report line: 25 of up to 19 digits stay within 512 bytes, POSIX's least
PIPE_BUF, so a relay killed mid-report never leaves half a line another one continues."""


RETRY: Final = b"!"
"""On the lifeline: end the pause after a failure now (any other byte: look now)."""


def follow_lifeline(
    wake: Callable[[], None], fd: int = 0, *, retry: Callable[[], None] | None = None
) -> None:
    """Call ``wake()`` for every chunk read from ``fd``, and ``retry()`` for one that holds
    :data:`RETRY`; return at end of file."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        if retry is not None and RETRY in chunk:
            retry()
        wake()
