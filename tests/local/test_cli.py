"""``orders-local`` as a user runs it: options, clear failures, signals, the events listing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local.support import ServerProcess

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'
pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orders_local.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def test_help_explains_every_option() -> None:
    result = cli("serve", "--help")
    assert result.returncode == 0
    for option in (
        "--db",
        "--host",
        "--port",
        "--sink",
        "--max-body",
        "--read-timeout",
        "--handler-timeout",
        "--allow-remote",
        "--relay",
        "ORDERS_LOCAL_DB",
    ):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "99999"], "not a TCP port"),
        (["serve", "--port", "http"], "not an integer"),
        (["serve", "--sink", "carrier-pigeon"], "unknown sink"),
        (["serve", "--bogus"], "unrecognized arguments"),
        (["serve", "--host", "0.0.0.0"], "refusing to listen on non-loopback"),
        # SQLite's server is one thread, and pinning it would pin its relay process beside it
        (["serve", "--cpu-affinity", "auto"], "its relay is a process of its own"),
        (
            ["serve", "--store", "memory", "--cpu-affinity", "auto"],
            "the memory store makes no round trips",
        ),
    ],
)
def test_bad_options_fail_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(*args, "--db", str(tmp_path / "o.db"))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--server", "builtin"], {}), ([], {"ORDERS_LOCAL_SERVER": "builtin"})],
    ids=["option", "variable"],
)
def test_the_removed_builtin_server_is_a_usage_error(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    result = cli("serve", "--port", "0", "--db", str(tmp_path / "o.db"), *args, env=env)
    assert result.returncode == 2
    assert "'builtin'" in result.stderr
    assert "uvicorn" in result.stderr.splitlines()[-1]  # the error names the valid choice
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "valid"),
    [
        ("ORDERS_LOCAL_CONSOLE", "maybe", "on, off"),  # was taken as "off", silently
        ("ORDERS_LOCAL_RELAY", "bogus", "process, thread"),
        ("ORDERS_LOCAL_STORE", "sqlite3", "sqlite"),
        ("ORDERS_LOCAL_CPU_AFFINITY", "on", "off, auto"),
        ("ORDERS_LOCAL_MAX_BODY", "9" * 5000, "not an integer"),  # past int()'s digit limit
    ],
    ids=["console", "relay", "store", "cpu-affinity", "max-body-5000-digits"],
)
def test_a_bad_choice_in_a_variable_is_a_usage_error_naming_it(
    tmp_path: Path, variable: str, value: str, valid: str
) -> None:
    result = cli("serve", "--port", "0", "--db", str(tmp_path / "o.db"), env={variable: value})
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert variable in last
    assert repr(value) in last
    assert valid in last
    assert "Traceback" not in result.stderr


def test_a_bad_serve_variable_leaves_the_other_commands_alone(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    bad = {"ORDERS_LOCAL_CONSOLE": "maybe", "ORDERS_LOCAL_PORT": "http"}  # serve's alone
    assert cli("serve", "--port", "0", "--db", str(db), env=bad).returncode == 2
    listed = cli("events", "--db", str(db), env=bad)  # the file serve never created
    assert listed.returncode == 1
    assert "no database" in listed.stderr
    assert "ORDERS_LOCAL" not in listed.stderr  # no word of serve's variables
    relayed = cli("relay", "--db", str(db), "--sink", "none", env=bad)
    assert "ORDERS_LOCAL" not in relayed.stderr
    assert "orders-local serve" not in relayed.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"ORDERS_LOCAL_SERVER": "uvicorn"},  # the one server left still takes its variable
        # ServerProcess passes --port 0: the option given wins, the bad variable goes unused
        {"ORDERS_LOCAL_PORT": "http"},
        # a variable shared with SQLite runs is no error for another store (the option is)
        {"ORDERS_LOCAL_STORE": "memory", "ORDERS_LOCAL_SYNCHRONOUS": "FULL"},
    ],
    ids=["server-variable", "option-over-bad-variable", "synchronous-variable-other-store"],
)
def test_the_server_starts_and_answers(tmp_path: Path, env: dict[str, str]) -> None:
    server = ServerProcess("--db", str(tmp_path / "o.db"), env=env)
    client = server.client()
    try:
        assert client.request("GET", "/healthz").status == 200
    finally:
        client.close()
        server.stop()


def test_an_unusable_database_path_fails_clearly(tmp_path: Path) -> None:
    result = cli("serve", "--port", "0", "--db", str(tmp_path / "missing-dir" / "o.db"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = cli("serve", "--port", "0", "--db", str(not_a_dir / "o.db"))
    assert result.returncode == 1
    assert "is not a directory" in result.stderr


def test_a_database_path_that_is_a_directory_fails_clearly(tmp_path: Path) -> None:
    result = cli("serve", "--port", "0", "--db", str(tmp_path))
    assert (result.returncode, "is a directory" in result.stderr) == (1, True)


def test_a_busy_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = cli("serve", "--port", str(port), "--db", str(tmp_path / "o.db"))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_environment_variables_configure_the_server(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    server = ServerProcess(env={"ORDERS_LOCAL_DB": str(db), "ORDERS_LOCAL_SINK": "none"})
    try:
        assert str(db) in "".join(server.stderr_lines)
        assert "sink: none" in "".join(server.stderr_lines)
    finally:
        code, _ = server.stop()
    assert code == 0


@pytest.mark.parametrize("relay", ["process", "thread"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cleanly_after_flushing_events(
    tmp_path: Path, signum: int, relay: str
) -> None:
    out = tmp_path / "events.jsonl"
    db = tmp_path / "o.db"
    server = ServerProcess("--db", str(db), "--sink", f"file:{out}", "--relay", relay)
    client = server.client()
    ids = [client.request("POST", "/orders", SEED).json()["orderId"] for _ in range(5)]
    client.close()
    code, err = server.stop(signum)
    assert code == 0, err
    assert "shutting down" in err
    published = [json.loads(line) for line in out.read_text().splitlines()]
    assert {e["subject"] for e in published} == set(ids)
    assert all(e["type"] == "io.orderscore.order.created.v1" for e in published)
    assert cli("events", "--db", str(db), "--pending", "--json").stdout == ""  # all marked


def test_events_lists_the_outbox_and_its_delivery_state(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    server = ServerProcess("--db", str(db), "--sink", "none")
    client = server.client()
    order_id = client.request("POST", "/orders", SEED).json()["orderId"]
    client.close()
    assert server.stop()[0] == 0
    table = cli("events", "--db", str(db))
    assert table.returncode == 0
    assert f"{order_id}.v1" in table.stdout
    assert "pending" in table.stdout
    lines = cli("events", "--db", str(db), "--pending", "--json").stdout.splitlines()
    (entry,) = [json.loads(line) for line in lines]
    assert (entry["id"], entry["deliveredAt"]) == (f"{order_id}.v1", None)
    missing = cli("events", "--db", str(tmp_path / "nope.db"))
    assert (missing.returncode, "no database" in missing.stderr) == (1, True)


def test_workers_get_every_serve_variable_the_supervisor_resolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--workers N: each worker's factory parses `serve` from ORDERS_LOCAL_* alone. A bad
    inherited variable that the supervisor's command line overrode must not reach it, or
    every worker exits at start and uvicorn respawns it for ever."""
    from orders_local.arguments import _FromEnv, build_parser, database_settings
    from orders_local.workers import worker_environment

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    from_env = [a for a in serve._actions if isinstance(a.default, _FromEnv)]
    parsed_from_env = {a.default.variable for a in from_env}
    for variable in parsed_from_env:
        monkeypatch.setenv(variable, "bad")
    # The options read as plain text (no parse to fail) must be handed on too: an inherited
    # ORDERS_LOCAL_SINK would otherwise win over the supervisor's --sink in every worker.
    plain = {
        "ORDERS_LOCAL_DB": ("--db", "given.db"),
        "ORDERS_LOCAL_TABLE": ("--table", "t"),
        "ORDERS_LOCAL_DYNAMODB_ENDPOINT": ("--endpoint-url", "http://127.0.0.1:8000"),
        "ORDERS_LOCAL_HOST": ("--host", "127.0.0.1"),
        "ORDERS_LOCAL_SINK": ("--sink", "none"),
        "ORDERS_LOCAL_TRACES_UI_URL": ("--traces-ui-url", ""),
    }
    named = {m for a in serve._actions for m in re.findall(r"ORDERS_LOCAL_\w+", a.help or "")}
    unchecked = named - parsed_from_env - set(plain) - {"ORDERS_LOCAL_ALLOW_REMOTE"}
    assert not unchecked, "set each serve variable here and give its option below"
    for variable in plain:
        monkeypatch.setenv(variable, "bad")
    shared = {  # read by other runtimes too; the command line wins over them as well
        "ORDERS_JWT_ISSUER": ("--jwt-issuer", "https://issuer.example"),
        "ORDERS_JWT_AUDIENCE": ("--jwt-audience", "orders-api"),
        "ORDERS_JWKS_URL": ("--jwks-url", "https://issuer.example/keys"),
        "ORDERS_JWT_ALGORITHMS": ("--jwt-algorithms", "ES256"),
        "ORDERS_ADMIN_SCOPE": ("--admin-scope", "orders:root"),
        "ORDERS_DATABASE_URL": ("--database-url", "postgresql://given@127.0.0.1/orders"),
        "ORDERS_DATABASE_SCHEMA": ("--database-schema", "given"),
        "ORDERS_DATABASE_PREPARE": ("--database-prepare", "off"),
    }
    for variable in shared:
        monkeypatch.setenv(variable, "bad")
    given = {
        "--store": "sqlite",  # --synchronous is refused with any other store
        "--port": "0",
        "--pool-min": "2",
        "--pool-max": "16",
        "--synchronous": "FULL",
        "--max-body": "1000",
        "--read-timeout": "0.00001",  # str() would give 1e-05
        "--handler-timeout": "10",
        "--relay": "thread",
        "--relay-backoff-base": "0.1",
        "--relay-backoff-cap": "10",
        "--console": "off",
        "--server": "uvicorn",
        "--workers": "2",
        "--cpu-affinity": "auto",
        "--threads": "8",
        "--max-connections": "100",
    }
    options = {a.option_strings[-1] for a in from_env}
    assert options <= set(given), "give each env-parsed option on the command line here"
    pairs = [*given.items(), *plain.values(), *shared.values()]
    argv = ["serve", *(x for item in pairs for x in item)]
    supervisor = build_parser().parse_args(argv)
    exported = worker_environment(supervisor)
    assert parsed_from_env | set(shared) <= set(exported)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    worker = build_parser().parse_args(["serve"])  # what orders_local.asgi_app.factory does
    # --database-url has no default (it would print in --help): the worker reads its URL
    # through database_settings, from the variable
    assert database_settings(worker) == database_settings(supervisor)
    assert vars(worker) == vars(supervisor) | {"database_url": None}


@pytest.mark.parametrize(
    ("args", "env"),
    [
        # the child took its store from the variable, and got backoffs as 1e-05 (refused)
        (
            [
                "--store",
                "sqlite",
                "--relay-backoff-base",
                "0.00001",
                "--relay-backoff-cap",
                "0.00002",
            ],
            {"ORDERS_LOCAL_STORE": "postgres"},
        ),
        # the child's parser reads ORDERS_LOCAL_POOL_MIN/MAX too, which serve's line overrode
        (
            ["--pool-min", "2", "--pool-max", "4"],
            {"ORDERS_LOCAL_POOL_MIN": "0", "ORDERS_LOCAL_POOL_MAX": "many"},
        ),
    ],
    ids=["store-and-tiny-backoffs", "pool-variables"],
)
def test_the_relay_process_runs_as_serve_was_told_not_as_the_environment_says(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """serve's relay is a child `orders-local relay`: each case was a usage error at each of
    its starts, so it restarted for ever, relaying nothing."""
    out = tmp_path / "events.jsonl"
    server = ServerProcess("--db", str(tmp_path / "o.db"), "--sink", f"file:{out}", *args, env=env)
    client = server.client()
    order_id = client.request("POST", "/orders", SEED).json()["orderId"]
    client.close()
    deadline = time.monotonic() + 15
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    code, err = server.stop()
    assert code == 0, err
    assert not [name for name in env if name in err]  # no word of the variables
    assert "relay process exited" not in err  # it never had to be started again
    assert [json.loads(line)["subject"] for line in out.read_text().splitlines()] == [order_id]


def test_a_store_without_an_outbox_here_is_a_usage_error_for_events(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    server = ServerProcess("--db", str(db), "--sink", "none")
    server.stop()
    refused = cli("events", "--db", str(db), env={"ORDERS_LOCAL_STORE": "dynamodb"})
    assert refused.returncode == 2
    last = refused.stderr.splitlines()[-1]
    assert "ORDERS_LOCAL_STORE" in last
    assert "--store sqlite or postgres" in last  # was read as sqlite, silently
    given = cli(
        "events", "--db", str(db), "--store", "sqlite", env={"ORDERS_LOCAL_STORE": "dynamodb"}
    )
    assert given.returncode == 0, given.stderr


@pytest.mark.parametrize(
    ("command", "store", "env"),
    [
        ("relay", "postgres", {}),
        ("serve", "dynamodb", {}),
        ("serve", "memory", {}),
        ("serve", None, {"ORDERS_LOCAL_STORE": "postgres"}),
    ],
    ids=["relay-postgres", "serve-dynamodb", "serve-memory", "store-from-variable"],
)
def test_synchronous_with_a_store_that_is_not_sqlite_is_a_usage_error(
    command: str, store: str | None, env: dict[str, str]
) -> None:
    """It was accepted and ignored: a user asking for FULL durability from PostgreSQL got
    whatever the server's synchronous_commit gives, and no word of it."""
    args = [command, "--synchronous", "FULL", *([] if store is None else ["--store", store])]
    result = cli(*args, env=env)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert "--synchronous is SQLite's durability" in last
    assert "Traceback" not in result.stderr


def test_events_shows_a_corrupt_record_by_position_and_event_id(tmp_path: Path) -> None:
    """`orders-local events` is the tool to find the row that holds the outbox back; it used
    to die on that row's bad JSON."""
    import sqlite3
    from datetime import UTC, datetime

    from orders_core.application import Change, event_for
    from orders_core.domain import LineItem, Order
    from orders_local.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "o.db")
    for order_id in ("o-1", "o-2"):
        order = Order.place(order_id, [LineItem(sku="a", quantity=1)], None, datetime.now(UTC))
        store.commit(Change(order, 0, (event_for(order),)), now=datetime.now(UTC))
    store.close()
    with sqlite3.connect(tmp_path / "o.db") as conn:
        conn.execute("UPDATE outbox SET record = '{not json' WHERE order_id = 'o-1'")
    listing = cli("events", "--db", str(tmp_path / "o.db"), "--json")
    assert listing.returncode == 0, listing.stderr
    first, second = (json.loads(line) for line in listing.stdout.splitlines())
    assert (first["position"], first["id"], first["type"]) == (1, "o-1.v1", "(corrupt record)")
    assert (second["id"], second["type"]) == ("o-2.v1", "io.orderscore.order.created.v1")
    assert "(corrupt record)" in cli("events", "--db", str(tmp_path / "o.db")).stdout
