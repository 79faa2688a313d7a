"""Group commit for the ASGI front end: writes grouped into units of work, reads in a pool.

With a store that ``begins_without_waiting`` (SQLite), the event loop runs the groups
itself: every write a loop iteration queued runs at the next one, in ONE unit of work
begun without waiting. Handing each write to a writer thread and back cost two GIL
hand-offs and a ``call_soon_threadsafe`` per request, more than the write itself
(docs/decisions/0014). If another writer holds the store (another process's lock, or this
process's writer thread), the unit cannot begin; the group then goes to the writer
thread, which waits for the lock (the busy timeout, then 503), while the loop keeps
answering reads and health checks. Any other grouping store runs every group on the
writer thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import Final

from orders_core.application import Deadline, Unit
from orders_core.edges._lane_parts import (
    READS,
    Answer,
    Watcher,
    after_commit,
    answer,
    deadline_in,
    in_context,
    stop_pool,
    time_left,
    unavailable,
    unless_stopped,
)
from orders_core.edges.http import HttpApi, HttpRequest
from orders_core.errors import StoreBusy

log = logging.getLogger("orders_core.lanes")

DEFAULT_READERS: Final = 4
DEFAULT_BATCH: Final = 64
WAKE_INTERVAL: Final = 0.005
"""On the loop, ``on_commit`` runs at most once in this many seconds, and always after
the last commit: each call wakes another process (the relay), a wake-up that cost the loop
more than most groups' commits (docs/decisions/0014)."""
_STOP: Final = object()

Done = Callable[[Answer | None], None]


class _Job:
    """A request to answer (or ``fn`` to run) inside a unit, and who gets the answer."""

    __slots__ = ("correlation", "deadline", "done", "fn", "request")

    def __init__(
        self,
        request: HttpRequest | None,
        deadline: Deadline | None,
        correlation: str,
        done: Done,
        fn: Callable[[], None] | None = None,
    ) -> None:
        self.request = request
        self.deadline = deadline
        self.correlation = correlation
        self.done = done
        self.fn = fn


def _settle(future: concurrent.futures.Future[Answer | None]) -> Done:
    """``future.set_result`` for the writer thread, unless the future was cancelled (its
    request's task was: a server's shutdown timeout, a client gone), which wants nothing."""

    def done(result: Answer | None) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_result(result)

    return done


def _resolve(future: asyncio.Future[Answer | None]) -> Done:
    def done(result: Answer | None) -> None:
        if not future.done():  # a request whose task was cancelled wants nothing
            future.set_result(result)

    return done


class GroupCommitLanes:
    """Writes in groups, each in one unit of work, on the loop or on one writer thread;
    reads in a pool (see the module docstring)."""

    def __init__(
        self,
        api: HttpApi,
        *,
        readers: int = DEFAULT_READERS,
        batch: int = DEFAULT_BATCH,
        on_commit: Callable[[], None] | None = None,
        on_loop: bool | None = None,
    ) -> None:
        """``on_loop``: run groups on the event loop; by default when the store declares
        ``begins_without_waiting``."""
        self.api = api
        self.readers = readers
        self.batch = batch
        self.on_commit = after_commit(on_commit)  # a wake-up never undoes an answer
        self.on_loop = api.service.store.begins_without_waiting if on_loop is None else on_loop
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reads: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = threading.Event()
        self._watched: list[tuple[int, Callable[[], None]]] = []
        self._watchers: list[Watcher] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[_Job] = []  # queued on the loop for its next group
        self._flush_due = False
        self._woken_at = float("-inf")
        self._wake_due: asyncio.TimerHandle | None = None
        self.units = 0
        """Units of work run (groups), for tests and figures."""
        self.units_on_loop = 0
        """Of those, the units the event loop ran itself."""
        self.written = 0
        """Requests answered from a unit."""

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and the readers. Called on the running loop (an ASGI lifespan),
        the watched descriptors become loop readers; else each gets a watcher thread that
        runs its callback on the writer."""
        self._reads = concurrent.futures.ThreadPoolExecutor(self.readers, "orders-read")
        self._writer = threading.Thread(target=self._write_loop, name="orders-writer", daemon=True)
        self._writer.start()
        loop = _running_loop()
        for fd, fn in self._watched:
            if self.on_loop and loop is not None:
                self._loop = loop
                loop.add_reader(fd, self._readable, loop, fd, fn)
            else:
                watcher = Watcher(fd, self._on_writer(fn), self._stopped)
                self._watchers.append(watcher)
                watcher.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Answer what is queued, then stop the writer and the readers, all within
        ``timeout`` s (a read still in its store call then is left running: :func:`stop_pool`)."""
        until = deadline_in(timeout)
        self._stopped.set()
        if self._loop is not None and _running_loop() is self._loop:
            for fd, _ in self._watched:
                self._loop.remove_reader(fd)
        if self._wake_due is not None:  # a wake-up still to come: now, then
            self._wake_due.cancel()
            self._wake_due = None
            self._wake()
        for watcher in self._watchers:
            watcher.thread.join(time_left(until))
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join(time_left(until))
        if self._reads is not None:
            stop_pool(self._reads, until)

    def watch(self, fd: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` inside the next unit of work whenever ``fd`` is readable (the relay's
        reports: marked delivered in that unit's transaction). Before start."""
        self._watched.append((fd, fn))

    def _on_writer(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            future: concurrent.futures.Future[Answer | None] = concurrent.futures.Future()
            self._queue.put(_Job(None, None, "", future.set_result, fn))
            future.result()  # the fd is drained before the next select

        return run

    def _readable(self, loop: asyncio.AbstractEventLoop, fd: int, fn: Callable[[], None]) -> None:
        """On the loop: ``fd`` has data. Stop watching it until a unit has run ``fn``."""
        loop.remove_reader(fd)

        def again(_: Answer | None) -> None:
            if not self._stopped.is_set():
                loop.add_reader(fd, self._readable, loop, fd, fn)

        self._wait_on_loop(loop, _Job(None, None, "", again, fn))

    # -- requests ----------------------------------------------------------------------

    async def submit(self, request: HttpRequest, deadline: Deadline, correlation: str) -> Answer:
        if request.method in READS:
            assert self._reads is not None, "start() the lanes first"
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()

            def read() -> Answer:
                return in_context(correlation, lambda: answer(self.api, request, deadline, None))

            return await unless_stopped(
                loop.run_in_executor(self._reads, context.run, read), request.path
            )
        if self._writer is None or not self._writer.is_alive() or self._stopped.is_set():
            return unavailable(request.path)
        result: Answer | None
        if self.on_loop:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Answer | None] = loop.create_future()
            self._wait_on_loop(loop, _Job(request, deadline, correlation, _resolve(future)))
            result = await future
        else:
            done: concurrent.futures.Future[Answer | None] = concurrent.futures.Future()
            self._queue.put(_Job(request, deadline, correlation, _settle(done)))
            result = await asyncio.wrap_future(done)
        assert result is not None
        return result

    def _wait_on_loop(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        """Queue ``job`` for the loop's next group: every write queued in this iteration of
        the loop (each request's task runs until it awaits) joins that group."""
        self._waiting.append(job)
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_due = False
        group = self._waiting[: self.batch]
        del self._waiting[: self.batch]
        if self._waiting:
            self._flush_due = True
            loop.call_soon(self._flush, loop)
        try:
            ran = self._run_group(group, wait=False, loop=loop)
        except BaseException:  # a bug here must not leave requests waiting for ever
            log.exception("group commit on the loop failed")
            for job in group:
                job.done(None if job.request is None else unavailable(job.request.path))
            raise
        if ran:
            self.units_on_loop += 1
            return
        if self._stopped.is_set() or self._writer is None or not self._writer.is_alive():
            for job in group:  # stopping: no writer will take them
                job.done(None if job.request is None else unavailable(job.request.path))
            return
        for job in group:  # another writer holds the store: the writer thread waits for it
            job.done = _threadsafe(loop, job.done)
            self._queue.put(job)

    # -- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop = False
            while len(group) < self.batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                group.append(more)
            self._run_group([job for job in group if isinstance(job, _Job)], wait=True)
            if stop:
                return

    # -- one group ---------------------------------------------------------------------

    def _run_group(
        self, group: list[_Job], *, wait: bool, loop: asyncio.AbstractEventLoop | None = None
    ) -> bool:
        """Run ``group`` in one unit and hand out its answers once the unit has ended.
        False if ``wait`` is off and the unit could not begin at once: nothing ran."""
        answers: list[Answer | None] = []
        committed = False
        began = False
        try:
            with self.api.service.unit_of_work(wait=wait) as unit:
                began = True
                for job in group:
                    answers.append(self._one(job, unit))
            committed = bool(unit.committed)
        except Exception as exc:
            if not began and not wait and isinstance(exc, StoreBusy):
                return False
            # The commit failed: none of the group's answers holds.
            requests = [job for job in group if job.request is not None]
            log.error(
                "commit failed (%s): %d requests get 503 instead of their answers",
                type(exc).__name__,
                len(requests),
            )
            answers = [
                None if job.request is None else unavailable(job.request.path) for job in group
            ]
        self.units += 1
        for job, result in zip(group, answers, strict=True):
            if job.request is not None:
                self.written += 1
            try:
                job.done(result)
            except Exception:  # one waiter's failure must not strand the others
                log.exception("an answer could not be handed out")
        if committed and self.on_commit is not None:
            if loop is None:
                self.on_commit()  # after the answers: no client waits for it
            else:
                self._committed_on(loop)
        return True

    def _committed_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake (``on_commit``) after the answered tasks have written, unless a wake-up
        came within WAKE_INTERVAL: then once that interval is over, for every commit
        made in it."""
        if self._wake_due is not None:
            return
        now = loop.time()
        if now >= self._woken_at + WAKE_INTERVAL:
            self._woken_at = now
            loop.call_soon(self._wake)
        else:
            self._wake_due = loop.call_at(self._woken_at + WAKE_INTERVAL, self._wake_later, loop)

    def _wake_later(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wake_due = None
        self._woken_at = loop.time()
        self._wake()

    def _wake(self) -> None:
        if self.on_commit is not None:
            self.on_commit()

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
        return in_context(job.correlation, lambda: answer(self.api, request, deadline, unit))


def _threadsafe(loop: asyncio.AbstractEventLoop, done: Done) -> Done:
    def from_writer(result: Answer | None) -> None:
        loop.call_soon_threadsafe(done, result)

    return from_writer


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
