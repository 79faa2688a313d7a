"""Fixtures for the local runtime: a real server on 127.0.0.1 and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orders_local.runtime import LocalConfig, LocalRuntime
from orders_local.sinks import CallbackSink
from orders_local.sqlite import SQLiteStore
from tests.local.support import Client, Collected


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite store on a fresh file, closed after the test."""
    s = SQLiteStore(tmp_path / "o.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def runtime(tmp_path: Path, collected: Collected) -> Iterator[LocalRuntime]:
    config = LocalConfig(db=tmp_path / "orders.db", port=0, sink="callback", max_body=64 * 1024)
    rt = LocalRuntime(config, publisher=CallbackSink(collected))
    rt.start()
    try:
        yield rt
    finally:
        rt.stop(timeout=5)


@pytest.fixture
def client(runtime: LocalRuntime) -> Iterator[Client]:
    c = Client(runtime.server.server_address[1])
    yield c
    c.close()
