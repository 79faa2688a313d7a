"""How HTTP requests reach the service from an ASGI event loop: the concurrency model.

The core's work is synchronous Python and the stores block (sqlite3, botocore), so the
event loop runs store work itself only where the store promises a unit of work never
waits for another writer; everything else goes to threads.

- :class:`ThreadLanes`, for networked stores (DynamoDB, PostgreSQL): each request runs in a
  bounded thread pool, in a unit of work of its own. A request waiting on its round trip
  holds one thread, never the others: throughput is up to ``threads / latency``. Size the
  pool to the store client's connection pool (botocore's ``max_pool_connections``), or
  threads queue for connections instead of for work.
- :class:`GroupCommitLanes`, for a store that ``groups_commits`` (SQLite: one writer at a
  time anyway): the writes queued while the loop was busy run as one group inside ONE
  ``service.unit_of_work()`` (several requests, one transaction, one fsync); the answers
  leave only after the unit has ended, and a failed commit turns the whole group into
  503s. A store that ``begins_without_waiting`` has its groups run on the event loop,
  begun without waiting; a group that finds another writer holding the store, and every
  group of other stores, runs on one writer thread, which may wait. Reads (GET, HEAD) run
  in a small pool of their own, so a writer waiting on a lock another process holds
  (SQLite's busy timeout, bounded) never freezes a health check or a read.

Either way ``on_commit`` (the relay's wake-up) runs after a unit that committed something,
as the unit records it (a replay commits nothing), after its answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Final, Protocol

from orders_core.application import Deadline
from orders_core.edges._group_commit import DEFAULT_BATCH, DEFAULT_READERS, GroupCommitLanes
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

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_READERS",
    "DEFAULT_THREADS",
    "READS",
    "Answer",
    "GroupCommitLanes",
    "Lanes",
    "ThreadLanes",
    "lanes_for",
]

log = logging.getLogger("orders_core.lanes")

DEFAULT_THREADS: Final = 32
"""Threads per process for a networked store; the DynamoDB client's pool is sized alike."""


class Lanes(Protocol):
    """How requests reach the service from the event loop (see :mod:`orders_core.edges.lanes`)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    async def submit(self, request: HttpRequest, deadline: Deadline, correlation: str) -> Answer:
        """Answer ``request`` without blocking the loop; never raises for the request's
        own failures (those are problem responses)."""
        ...


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
        self.on_commit = after_commit(on_commit)  # a wake-up never undoes an answer
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = threading.Event()
        self._watchers: list[Watcher] = []

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.threads, "orders")
        for watcher in self._watchers:
            watcher.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop within ``timeout`` s: begun work has until then to end (see :func:`stop_pool`)."""
        until = deadline_in(timeout)
        self._stopped.set()
        if self._pool is not None:
            stop_pool(self._pool, until)
        for watcher in self._watchers:
            watcher.thread.join(time_left(until))

    def watch(self, fd: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` in a unit of work whenever ``fd`` is readable. Before start."""

        def in_unit() -> None:
            with self.api.service.unit_of_work():
                fn()

        self._watchers.append(Watcher(fd, in_unit, self._stopped))

    async def submit(self, request: HttpRequest, deadline: Deadline, correlation: str) -> Answer:
        assert self._pool is not None, "start() the lanes first"
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        work = lambda: in_context(correlation, lambda: self._work(request, deadline))  # noqa: E731
        return await unless_stopped(
            loop.run_in_executor(self._pool, context.run, work), request.path
        )

    def _work(self, request: HttpRequest, deadline: Deadline) -> Answer:
        try:
            with self.api.service.unit_of_work() as unit:
                result = answer(self.api, request, deadline, unit)
        except Exception as exc:
            log.error("unit of work failed (%s): 503", type(exc).__name__)
            return unavailable(request.path)
        if unit.committed and self.on_commit is not None:
            self.on_commit()
        return result


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
