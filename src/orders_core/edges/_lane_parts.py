"""What both kinds of lanes share: the answer they give the ASGI app, one request answered
on the current thread with its log context, a thread that watches a descriptor, and a
thread pool stopped within a deadline."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import select
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final

from orders_core import telemetry
from orders_core.application import Deadline, Unit
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse, problem_response
from orders_core.errors import StoreUnavailable

log = logging.getLogger("orders_core.lanes")

READS: Final = frozenset({"GET", "HEAD"})


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


def unavailable(path: str) -> Answer:
    error = StoreUnavailable("the database is unavailable; nothing was committed")
    return Answer(problem_response(error, path), close=True)


async def unless_stopped(work: Awaitable[Answer], path: str) -> Answer:
    """``work``'s answer; 503 (nothing was committed) if the lanes' pool cancelled it
    before it began, as ``stop`` does. The task then ended in ``CancelledError``, which a
    server answers 500. A cancellation of the request's own task goes on up."""
    try:
        return await work
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return unavailable(path)


def answer(api: HttpApi, request: HttpRequest, deadline: Deadline, unit: Unit | None) -> Answer:
    """One request on this thread, with its correlation id on the thread's log lines."""
    order_token = telemetry.order_id.set(None)
    try:
        response = api.handle(request, deadline, unit=unit)
        return Answer(response, telemetry.order_id.get())
    finally:
        telemetry.order_id.reset(order_token)


WAKE_LOG_INTERVAL: Final = 60.0
"""Seconds between log lines for wake-ups that keep failing (one may come every 5 ms)."""


class _WakeFailures:
    """How many wake-ups failed since the last line about them, and when that was."""

    lock = threading.Lock()
    held = 0
    logged_at = float("-inf")


def after_commit(on_commit: Callable[[], None] | None) -> Callable[[], None] | None:
    """The lanes' ``on_commit`` (the relay's wake-up), made never to raise. The commit
    stands whatever it does: a failure is logged, never raised into the answer (a
    committed order answered 500 would be retried, and written twice without a key) or
    into the thread that runs the units (the writer would stop, and every later write get
    503). A failure that repeats is logged once, then at most every
    :data:`WAKE_LOG_INTERVAL` with a count."""
    if on_commit is None:
        return None
    wake = on_commit

    def guarded() -> None:
        try:
            wake()
        except Exception:
            with _WakeFailures.lock:
                now = time.monotonic()
                if now - _WakeFailures.logged_at < WAKE_LOG_INTERVAL:
                    _WakeFailures.held += 1
                    return
                held, _WakeFailures.held, _WakeFailures.logged_at = _WakeFailures.held, 0, now
            log.exception(
                "the wake-up after a commit failed; the commit and its answer stand"
                + (f" ({held} more failed since the last line)" if held else "")
            )

    return guarded


def in_context(correlation: str, fn: Callable[[], Answer]) -> Answer:
    token = telemetry.correlation_id.set(correlation)
    try:
        return fn()
    finally:
        telemetry.correlation_id.reset(token)


class Watcher:
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


def deadline_in(timeout: float) -> float:
    """The ``time.monotonic()`` deadline ``timeout`` s from now."""
    return time.monotonic() + timeout


def time_left(until: float) -> float:
    """Seconds from now to ``until`` (a ``time.monotonic()`` deadline), never negative."""
    return max(0.0, until - time.monotonic())


def stop_pool(pool: concurrent.futures.ThreadPoolExecutor, until: float) -> None:
    """Stop ``pool`` by ``until`` (a ``time.monotonic()`` deadline): work not begun is
    cancelled, begun work has until then to end. A thread still in its call then (a store
    round trip that never returns) is logged and left running: ``shutdown(wait=True)``
    would wait for it for ever, on the event loop when a lifespan shutdown stops the lanes."""
    pool.shutdown(wait=False, cancel_futures=True)
    for thread in list(pool._threads):
        thread.join(time_left(until))
        if thread.is_alive():
            log.warning("%s is still in a call at shutdown; left running", thread.name)
