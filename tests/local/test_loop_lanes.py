"""Group commit on the event loop (SQLite): the ASGI app driven with ASGI messages on a real
store file, no server. Writes queued in one loop iteration share one unit the loop runs
itself; a unit that cannot begin at once (another writer holds the file) goes to the writer
thread, and the loop keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import OrderService
from orders_core.edges import _lane_parts
from orders_core.edges.asgi import OrdersAsgi, create_app
from orders_core.edges.http import HttpApi
from orders_core.edges.lanes import GroupCommitLanes, ThreadLanes
from orders_local.sqlite import SQLiteStore
from tests.unit.test_asgi import call, post, scope, status_of


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "o.db")
    yield s
    s.close()


def app_for(store: SQLiteStore, wakes: list[int] | None = None) -> OrdersAsgi:
    api = HttpApi(OrderService(store))
    lanes = GroupCommitLanes(api, on_commit=None if wakes is None else lambda: wakes.append(1))
    assert lanes.on_loop  # SQLite declares it begins units without waiting
    return create_app(api, lanes)


def lanes_of(app: OrdersAsgi) -> GroupCommitLanes:
    assert isinstance(app.lanes, GroupCommitLanes)
    return app.lanes


def test_writes_queued_in_one_iteration_share_one_unit_on_the_loop(store: SQLiteStore) -> None:
    app = app_for(store)
    app.startup()

    async def five() -> list[list[Any]]:
        return list(await asyncio.gather(*(call(app, post(), [b'{"items":[{"id":"a","qty":1}]}'])
                                           for _ in range(5))))  # fmt: skip

    try:
        results = asyncio.run(five())
    finally:
        app.shutdown()
    assert [status_of(sent) for sent in results] == [201] * 5
    lanes = lanes_of(app)
    assert (lanes.units, lanes.units_on_loop, lanes.written) == (1, 1, 5)
    assert len(store.pending()) == 5


def test_a_held_write_lock_sends_the_write_to_the_writer_and_reads_go_on(
    store: SQLiteStore,
) -> None:
    app = app_for(store)
    app.startup()
    holder = sqlite3.connect(store.path, isolation_level=None, timeout=0)  # another process
    holder.execute("BEGIN IMMEDIATE")

    async def scenario() -> tuple[int, int, bool]:
        write = asyncio.ensure_future(call(app, post(), [b'{"items":[{"id":"a","qty":1}]}']))
        await asyncio.sleep(0.2)  # the loop found the lock held: the writer waits for it
        health = status_of(await call(app, scope("GET", "/healthz", []), []))
        waiting = not write.done()
        holder.execute("ROLLBACK")
        return health, status_of(await write), waiting

    try:
        health, created, waiting = asyncio.run(scenario())
    finally:
        app.shutdown()
        holder.close()
    assert (health, created, waiting) == (200, 201, True)
    lanes = lanes_of(app)
    assert (lanes.units, lanes.units_on_loop) == (1, 0)  # the writer thread's unit


def test_every_commit_on_the_loop_is_followed_by_a_wake_up(store: SQLiteStore) -> None:
    wakes: list[int] = []
    app = app_for(store, wakes)
    app.startup()
    lanes = lanes_of(app)
    seen: list[int] = []

    async def writes() -> None:
        for _ in range(3):  # one after another: three units, within one wake-up interval
            await call(app, post(), [b'{"items":[{"id":"a","qty":1}]}'])
        for _ in range(200):
            if wakes:
                seen.append(lanes.units)  # how many units a wake-up covered
                wakes.clear()
            if seen and seen[-1] == 3:
                return
            await asyncio.sleep(0.01)

    try:
        asyncio.run(writes())
    finally:
        app.shutdown()
    assert lanes.units == 3
    assert seen[-1] == 3  # the last wake-up came after the last commit


def test_a_watched_descriptor_runs_its_callback_in_a_unit_on_the_loop(
    store: SQLiteStore,
) -> None:
    app = app_for(store)
    lanes = lanes_of(app)
    read, write = os.pipe()
    inside: list[bool] = []

    def drain() -> None:
        os.read(read, 100)
        inside.append(store._current_unit() is not None)

    lanes.watch(read, drain)

    async def scenario() -> None:
        app.startup()  # on the running loop, as an ASGI lifespan starts it
        os.write(write, b"x")
        for _ in range(200):
            if inside:
                break
            await asyncio.sleep(0.01)
        app.shutdown()

    try:
        asyncio.run(scenario())
    finally:
        os.close(read)
        os.close(write)
    assert inside == [True]
    assert lanes.units_on_loop == 1


@pytest.mark.parametrize("lanes", ["loop", "writer", "threads"])
def test_a_wake_up_that_fails_leaves_the_answer_and_the_lanes_standing(
    store: SQLiteStore,
    lanes: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay's wake-up runs after the commit: if it raised, a thread lane answered a
    committed order with a 500 (a retry without a key writes it twice), and the writer
    thread died, so every later write got 503."""

    def broken_wake() -> None:
        raise OSError("EBADF")

    monkeypatch.setattr(_lane_parts._WakeFailures, "logged_at", float("-inf"))
    api = HttpApi(OrderService(store))
    if lanes == "threads":
        chosen: Any = ThreadLanes(api, on_commit=broken_wake)
    else:
        chosen = GroupCommitLanes(api, on_commit=broken_wake, on_loop=lanes == "loop")
    app = create_app(api, chosen)
    app.startup()

    async def three() -> list[int]:
        statuses = []
        for _ in range(3):  # one after the other: each its own unit, each its own wake-up
            sent = await call(app, post(), [b'{"items":[{"id":"a","qty":1}]}'])
            statuses.append(status_of(sent))
            await asyncio.sleep(0.01)
        return statuses

    try:
        statuses = asyncio.run(three())
    finally:
        app.shutdown()
    assert statuses == [201, 201, 201]
    assert len(store.pending()) == 3
    assert any("wake-up after a commit failed" in r.getMessage() for r in caplog.records)


def test_a_wake_up_that_keeps_failing_is_logged_once_a_minute_with_a_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the loop a wake-up may come every 5 ms: a traceback for each would flood the log."""
    monkeypatch.setattr(_lane_parts._WakeFailures, "logged_at", float("-inf"))
    monkeypatch.setattr(_lane_parts._WakeFailures, "held", 0)

    def broken_wake() -> None:
        raise OSError("EBADF")

    caplog.set_level(logging.ERROR, logger="orders_core.lanes")
    guarded = _lane_parts.after_commit(broken_wake)
    assert guarded is not None
    for _ in range(100):
        guarded()
    lines = [r.getMessage() for r in caplog.records if "wake-up after a commit" in r.getMessage()]
    assert len(lines) == 1
    monkeypatch.setattr(_lane_parts, "WAKE_LOG_INTERVAL", 0.0)  # the minute is over
    guarded()
    lines = [r.getMessage() for r in caplog.records if "wake-up after a commit" in r.getMessage()]
    assert len(lines) == 2
    assert "(99 more failed since the last line)" in lines[1]
