"""SQLite durability is the user's choice: ``synchronous`` NORMAL (the default) or FULL.

NORMAL in WAL mode survives a process crash but an OS crash or power loss can lose the last
acknowledged commits; FULL fsyncs the WAL on every commit. The choice must reach every
connection the store opens, and a value SQLite would silently misread must be refused.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from orders_local.arguments import build_parser
from orders_local.runtime import LocalConfig, LocalRuntime
from orders_local.sinks import CallbackSink
from orders_local.sqlite import SQLiteStore
from tests.local.support import Client, Collected, ServerProcess

# PRAGMA synchronous reads back as a number.
LEVELS = {"NORMAL": 1, "FULL": 2}


def _levels(store: SQLiteStore, threads: int = 3) -> set[int]:
    """``PRAGMA synchronous`` on the connections of several threads (the pool opens one each)."""
    seen: set[int] = set()
    barrier = threading.Barrier(threads)

    def read() -> None:
        with store._connection() as conn:
            barrier.wait(timeout=5)  # hold this connection so the next thread opens another
            seen.add(conn.execute("PRAGMA synchronous").fetchone()[0])

    workers = [threading.Thread(target=read) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    assert len(store._all) >= threads
    return seen


def test_the_default_is_normal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    try:
        assert store.synchronous == "NORMAL"
        assert _levels(store) == {LEVELS["NORMAL"]}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("given", "level"), [("FULL", "FULL"), ("full", "FULL"), ("Normal", "NORMAL")]
)
def test_the_setting_reaches_every_connection(tmp_path: Path, given: str, level: str) -> None:
    store = SQLiteStore(tmp_path / "o.db", synchronous=given)
    try:
        assert store.synchronous == level
        assert _levels(store) == {LEVELS[level]}
    finally:
        store.close()


@pytest.mark.parametrize("bad", ["OFF", "EXTRA", "0", "2", "", "FULL; DROP TABLE orders", "yes"])
def test_other_values_are_refused_clearly(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match=r"synchronous must be FULL or NORMAL") as info:
        SQLiteStore(tmp_path / "o.db", synchronous=bad)
    assert repr(bad) in str(info.value)
    assert not (tmp_path / "o.db").exists()  # refused before anything was created


def test_the_runtime_applies_its_config(tmp_path: Path) -> None:
    collected = Collected()
    config = LocalConfig(db=tmp_path / "o.db", port=0, sink="callback", synchronous="FULL")
    rt = LocalRuntime(config, publisher=CallbackSink(collected))
    rt.start()
    try:
        client = Client(rt.server.server_address[1])
        assert client.request("POST", "/orders", b'{"items":[{"id":"a","qty":1}]}').status == 201
        client.close()
        assert isinstance(rt.store, SQLiteStore)
        assert _levels(rt.store) == {LEVELS["FULL"]}
        assert "synchronous FULL" in rt.describe()
    finally:
        rt.stop(timeout=5)


def test_cli_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args(["serve"]).synchronous == "NORMAL"
    assert build_parser().parse_args(["serve", "--synchronous", "full"]).synchronous == "FULL"
    monkeypatch.setenv("ORDERS_LOCAL_SYNCHRONOUS", "FULL")
    assert build_parser().parse_args(["serve"]).synchronous == "FULL"
    assert build_parser().parse_args(["serve", "--synchronous", "NORMAL"]).synchronous == "NORMAL"


@pytest.mark.parametrize(
    "argv_env", [(["--synchronous", "OFF"], {}), ([], {"ORDERS_LOCAL_SYNCHRONOUS": "OFF"})]
)
def test_cli_refuses_other_values(
    argv_env: tuple[list[str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv, env = argv_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "FULL or NORMAL" in err
    assert "'OFF'" in err
    if env:
        assert "ORDERS_LOCAL_SYNCHRONOUS" in err


def test_serve_says_which_it_runs(tmp_path: Path) -> None:
    server = ServerProcess(
        "--db", str(tmp_path / "o.db"), "--sink", "none", "--synchronous", "FULL"
    )
    code, err = server.stop()
    assert code == 0
    assert "synchronous FULL" in err
