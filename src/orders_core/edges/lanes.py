"""How HTTP requests reach the service from an ASGI event loop: the concurrency model.

The core's work is synchronous Python and the stores block (sqlite3, botocore), so the
event loop never runs it: it hands each request to a thread and awaits the answer.

- :class:`ThreadLanes`, for networked stores (DynamoDB, PostgreSQL): each request runs in a
  bounded thread pool, in a unit of work of its own. A request waiting on its round trip
  holds one thread, never the others: throughput is up to ``threads / latency``. Size the
  pool to the store client's connection pool (botocore's ``max_pool_connections``), or
  threads queue for connections instead of for work.
- :class:`GroupCommitLanes`, for a store that ``groups_commits`` (SQLite: one writer at a
  time anyway): one writer thread takes every write queued while the previous batch ran and
  runs the batch inside ONE ``service.unit_of_work()`` (several requests, one transaction,
  one fsync); the answers leave only after the unit has ended, and a failed commit turns
  the whole batch into 503s. Reads (GET, HEAD) run in a small pool of their own, so a
  writer waiting on a lock another process holds (SQLite's busy timeout, bounded) never
  freezes a health check or a read.

Either way ``on_commit`` (the relay's wake-up) runs after a unit that committed something,
as the unit records it (a replay commits nothing), on the thread that ran the unit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import queue
import select
import threading
from collections.abc import Callable
from typing import Final, Protocol

from orders_core import telemetry
from orders_core.application import Deadline, Unit
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse, problem_response
from orders_core.errors import StoreUnavailable

log = logging.getLogger("orders_core.lanes")

DEFAULT_THREADS: Final = 32
"""Threads per process for a networked store; the DynamoDB client's pool is sized alike."""
DEFAULT_READERS: Final = 4
DEFAULT_BATCH: Final = 64
READS: Final = frozenset({"GET", "HEAD"})
_STOP: Final = object()


class Answer:
    """What the lanes answered: the response, the order it named (for the access log),
    and whether the connection must close after it (a withdrawn answer)."""

    __slots__ = ("close", "order_id", "response")

    def __init__(
        self, response: HttpResponse, order_id: str | None = None, *, close: bool = False
    ) -> None:
        self.response = response
        self.order_id = order_id
        self.close = close


class Lanes(Protocol):
    """How requests reach the service from the event loop (see :mod:`orders_core.edges.lanes`)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    async def submit(self, request: HttpRequest, deadline: Deadline, correlation: str) -> Answer:
        """Answer ``request`` without blocking the loop; never raises for the request's
        own failures (those are problem responses)."""
        ...


def _unavailable(path: str) -> Answer:
    error = StoreUnavailable("the database is unavailable; nothing was committed")
    return Answer(problem_response(error, path), close=True)


def _answer(api: HttpApi, request: HttpRequest, deadline: Deadline, unit: Unit | None) -> Answer:
    """One request on this thread, with its correlation id on the thread's log lines."""
    order_token = telemetry.order_id.set(None)
    try:
        response = api.handle(request, deadline, unit=unit)
        return Answer(response, telemetry.order_id.get())
    finally:
        telemetry.order_id.reset(order_token)


def _in_context(correlation: str, fn: Callable[[], Answer]) -> Answer:
    token = telemetry.correlation_id.set(correlation)
    try:
        return fn()
    finally:
        telemetry.correlation_id.reset(token)


class _Watcher:
    """A thread that calls ``fn`` whenever ``fd`` is readable, until stopped (the relay
    process's delivery reports)."""

    def __init__(self, fd: int, fn: Callable[[], None], stopped: threading.Event) -> None:
        self.thread = threading.Thread(
            target=self._run, args=(fd, fn, stopped), name="fd-watcher", daemon=True
        )

    @staticmethod
    def _run(fd: int, fn: Callable[[], None], stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                readable, _, _ = select.select([fd], [], [], 0.1)
            except (OSError, ValueError):  # closed under us: the runtime is stopping
                return
            if readable and not stopped.is_set():
                try:
                    fn()
                except Exception:
                    log.exception("fd watcher callback failed")


class ThreadLanes:
    """Each request in a bounded thread pool, in its own unit of work."""

    def __init__(
        self,
        api: HttpApi,
        *,
        threads: int = DEFAULT_THREADS,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.threads = threads
        self.on_commit = on_commit
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = threading.Event()
        self._watchers: list[_Watcher] = []

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.threads, "orders")
        for watcher in self._watchers:
            watcher.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for watcher in self._watchers:
            watcher.thread.join(timeout)

    def watch(self, fd: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` in a unit of work whenever ``fd`` is readable. Before start."""

        def in_unit() -> None:
            with self.api.service.unit_of_work():
                fn()

        self._watchers.append(_Watcher(fd, in_unit, self._stopped))

    async def submit(self, request: HttpRequest, deadline: Deadline, correlation: str) -> Answer:
        assert self._pool is not None, "start() the lanes first"
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        work = lambda: _in_context(correlation, lambda: self._work(request, deadline))  # noqa: E731
        return await loop.run_in_executor(self._pool, context.run, work)

    def _work(self, request: HttpRequest, deadline: Deadline) -> Answer:
        try:
            with self.api.service.unit_of_work() as unit:
                answer = _answer(self.api, request, deadline, unit)
        except Exception as exc:
            log.error("unit of work failed (%s): 503", type(exc).__name__)
            return _unavailable(request.path)
        if unit.committed and self.on_commit is not None:
            self.on_commit()
        return answer


class _Job:
    __slots__ = ("correlation", "deadline", "fn", "future", "request")

    def __init__(
        self,
        request: HttpRequest | None,
        deadline: Deadline | None,
        correlation: str,
        fn: Callable[[], None] | None = None,
    ) -> None:
        self.request = request
        self.deadline = deadline
        self.correlation = correlation
        self.fn = fn
        self.future: concurrent.futures.Future[Answer | None] = concurrent.futures.Future()


class GroupCommitLanes:
    """One writer thread, batches of writes in one unit of work each; reads in a pool."""

    def __init__(
        self,
        api: HttpApi,
        *,
        readers: int = DEFAULT_READERS,
        batch: int = DEFAULT_BATCH,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.readers = readers
        self.batch = batch
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reads: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = threading.Event()
        self._watchers: list[_Watcher] = []
        self.units = 0
        """Units of work the writer has run (batches), for tests and figures."""
        self.written = 0
        """Requests the writer has answered."""

    def start(self) -> None:
        self._reads = concurrent.futures.ThreadPoolExecutor(self.readers, "orders-read")
        self._writer = threading.Thread(target=self._write_loop, name="orders-writer", daemon=True)
        self._writer.start()
        for watcher in self._watchers:
            watcher.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Answer what is queued, then stop the writer and the readers."""
        self._stopped.set()
        for watcher in self._watchers:
            watcher.thread.join(timeout)
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join(timeout)
        if self._reads is not None:
            self._reads.shutdown(wait=True)

    def watch(self, fd: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the writer thread, inside its next unit of work, whenever ``fd`` is
        readable (the relay's reports: marked delivered in the batch's transaction). The
        writer is the only thread that calls ``on_commit`` and ``fn``. Before start."""

        def on_writer() -> None:
            job = _Job(None, None, "", fn)
            self._queue.put(job)
            job.future.result()  # the fd is drained before the next select

        self._watchers.append(_Watcher(fd, on_writer, self._stopped))

    async def submit(self, request: HttpRequest, deadline: Deadline, correlation: str) -> Answer:
        if request.method in READS:
            assert self._reads is not None, "start() the lanes first"
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()

            def read() -> Answer:
                return _in_context(correlation, lambda: _answer(self.api, request, deadline, None))

            return await loop.run_in_executor(self._reads, context.run, read)
        job = _Job(request, deadline, correlation)
        if self._writer is None or not self._writer.is_alive():
            return _unavailable(request.path)
        self._queue.put(job)
        answer = await asyncio.wrap_future(job.future)
        assert answer is not None
        return answer

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._run_batch([job for job in batch if isinstance(job, _Job)])
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        answers: list[Answer | None] = []
        committed = False
        try:
            with self.api.service.unit_of_work() as unit:
                for job in batch:
                    answers.append(self._one(job, unit))
            committed = bool(unit.committed)
        except Exception as exc:  # the commit failed: none of the batch's answers holds
            requests = [job for job in batch if job.request is not None]
            log.error(
                "commit failed (%s): %d requests get 503 instead of their answers",
                type(exc).__name__,
                len(requests),
            )
            answers = [
                None if job.request is None else _unavailable(job.request.path) for job in batch
            ]
        self.units += 1
        for job, answer in zip(batch, answers, strict=True):
            if job.request is not None:
                self.written += 1
            job.future.set_result(answer)
        if committed and self.on_commit is not None:
            self.on_commit()  # after the answers: no client waits for the wake-up

    def _one(self, job: _Job, unit: Unit) -> Answer | None:
        if job.fn is not None:
            try:
                job.fn()
            except Exception:
                log.exception("writer job failed")
            return None
        assert job.request is not None
        assert job.deadline is not None
        request, deadline = job.request, job.deadline
        return _in_context(job.correlation, lambda: _answer(self.api, request, deadline, unit))


def lanes_for(
    api: HttpApi,
    *,
    threads: int = DEFAULT_THREADS,
    on_commit: Callable[[], None] | None = None,
) -> ThreadLanes | GroupCommitLanes:
    """Group commit for a store that declares it, else a thread per request."""
    if api.service.store.groups_commits:
        return GroupCommitLanes(api, on_commit=on_commit)
    return ThreadLanes(api, threads=threads, on_commit=on_commit)
