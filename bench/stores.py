"""Creates/s through ``orders-local serve`` (uvicorn) on each store, in one run: SQLite (its
default synchronous=NORMAL, and FULL), PostgreSQL (a local server started here, with its
durable defaults: fsync and synchronous_commit on) and DynamoDB (bench/_dynamodb_stub.py,
answering at once: it stands for the round trip, not for the database).

    python bench/stores.py [--rounds 3] [--seconds 3] [--connections 16,64] [--database-url URL]
                           [--stores sqlite,sqlite-full,postgres,postgres-unordered,dynamodb]
                           [--keyed]

``postgres-unordered`` is PostgreSQL with the outbox's commit-order lock taken out of
``apply_change`` (in a schema of its own): what that lock costs through the front end, a
measurement, not an option of the store (docs/decisions/0019). ``--keyed`` adds each store
again as ``STORE+key``: the same server sent creates that each carry a new Idempotency-Key.

Load: bench/local_http.py's generator (one selectors thread, keep-alive connections, 3-item
body) in its own process; stores alternate within each round. SQLite and PostgreSQL relay
every event to a file; DynamoDB's events would leave through its stream (no relay here).

On PostgreSQL it also counts, per create, what the server executed (pg_stat_statements with
track=all, when the server here can load it): round trips on the request path (top-level
statements of request code), statements including those inside ``apply_change``, the
relay's statements, and WAL syncs (pg_stat_wal). Write units are not a PostgreSQL concept.
Prints medians; asserts nothing; writes bench/results/stores.json. Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _child import FAKE_AWS, save
from container import run_load
from local_http import Server

HERE = Path(__file__).resolve().parent
STORES = ("sqlite", "sqlite-full", "postgres", "postgres-unordered", "dynamodb")
RELAY_QUERIES = ("FROM {s}.outbox WHERE delivered_at IS NULL ORDER", "UPDATE {s}.outbox SET")


def serve_argv(store: str, tmp: Path, database_url: str, stub_port: int) -> list[str]:
    store = store.removesuffix("+key")  # the same server, sent keyed creates
    argv = [sys.executable, "-m", "orders_local.cli", "serve", "--port", "0"]
    sink = ["--sink", f"file:{tmp / f'{store}-events.jsonl'}"]
    db = ["--db", str(tmp / f"{store}-{os.getpid()}-{len(os.listdir(tmp))}.db")]
    if store == "sqlite":
        return [*argv, *db, *sink]
    if store == "sqlite-full":
        return [*argv, *db, "--synchronous", "FULL", *sink]
    if store == "postgres":
        return [*argv, "--store", "postgres", "--database-url", database_url, *sink]
    if store == "postgres-unordered":
        pg = ["--store", "postgres", "--database-url", database_url]
        return [*argv, *pg, "--database-schema", "unordered", *sink]
    endpoint = f"http://127.0.0.1:{stub_port}"
    return [*argv, "--store", "dynamodb", "--table", "bench", "--endpoint-url", endpoint]


@contextmanager
def postgres(url: str) -> Iterator[tuple[str, Any]]:
    """(URL, a connection for the counters, or None): the caller's server, or one here."""
    import psycopg

    server = None
    if not url:
        from orders_postgres.testing import TestServer

        server = TestServer(
            durable=True,
            settings={
                "shared_preload_libraries": "pg_stat_statements",
                "pg_stat_statements.track": "all",
            },
        ).start()
        url = server.url
    conn = psycopg.connect(url, autocommit=True)
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT count(*) FROM pg_stat_statements")
        counters: Any = conn
    except psycopg.Error:
        print("pg_stat_statements not loaded: no statement counts", file=sys.stderr)
        counters = None
    try:
        unordered(url)
        yield url, counters
    finally:
        conn.close()
        if server is not None:
            server.destroy()


def unordered(url: str) -> None:
    """The ``unordered`` schema: apply_change without its pg_advisory_xact_lock."""
    import re

    from orders_postgres.driver import Database
    from orders_postgres.store import PostgresStore

    database = Database(url, min_size=1, max_size=1)
    database.open()
    try:
        PostgresStore(database, schema="unordered")
        query = "SELECT pg_get_functiondef('unordered.apply_change'::regproc)"
        source = database.run(lambda conn: conn.execute(query).fetchone()[0], read=True)
        patched = re.sub(r"PERFORM pg_advisory_xact_lock\([-0-9]+\);", "", source)
        assert patched != source
        database.run(lambda conn: conn.execute(patched), read=False)
    finally:
        database.close()


def reset(conn: Any) -> int:
    conn.execute("SELECT pg_stat_statements_reset()")
    return int(conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0])


def per_create(
    conn: Any, syncs_before: int, creates: int, schema: str = "orders_core"
) -> dict[str, float]:
    """What the server executed per create since :func:`reset`, by kind."""
    rows = conn.execute("SELECT toplevel, calls, query FROM pg_stat_statements").fetchall()
    relay = tuple(q.format(s=schema) for q in RELAY_QUERIES)
    ours = [(top, calls, q) for top, calls, q in rows if "pg_stat" not in q]
    request_top = sum(c for top, c, q in ours if top and f"{schema}.apply_change" in q)
    other_top = sum(
        c
        for top, c, q in ours
        if top and f"{schema}.apply_change" not in q and not any(r in q for r in relay)
    )
    inside = sum(c for top, c, q in ours if not top)
    relay_calls = sum(c for top, c, q in ours if top and any(r in q for r in relay))
    syncs = int(conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0]) - syncs_before
    return {
        "round_trips": request_top / creates,
        "other_top_level": other_top / creates,
        "statements": (request_top + inside) / creates,
        "relay_statements": relay_calls / creates,
        "wal_syncs": syncs / creates,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--database-url", default=os.environ.get("ORDERS_DATABASE_URL", ""))
    parser.add_argument(
        "--keyed", action="store_true", help="also each store sent keyed creates (STORE+key)"
    )
    args = parser.parse_args()
    stores = args.stores.split(",")
    if args.keyed:
        stores += [f"{s}+key" for s in stores]
    counts = [int(c) for c in args.connections.split(",")]
    os.environ.update(FAKE_AWS)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children read and keep their pycs
    results: dict[tuple[str, int], list[dict[str, Any]]] = {
        (s, c): [] for s in stores for c in counts
    }
    costs: dict[tuple[str, int], list[dict[str, float]]] = {
        (s, c): [] for s in stores for c in counts if s.removesuffix("+key") == "postgres"
    }
    stub = Server("stub", [sys.executable, str(HERE / "_dynamodb_stub.py"), "0"])
    try:
        with postgres(args.database_url) as (url, counters), tempfile.TemporaryDirectory() as tmp:
            for rnd in range(args.rounds):
                for store in stores if rnd % 2 == 0 else reversed(stores):
                    server = Server(store, serve_argv(store, Path(tmp), url, stub.port))
                    try:
                        run_load(server.port, 4, 0.5)  # warm-up: imports, pools, caches
                        for c in counts:
                            measured = (store, c) in costs and counters is not None
                            before = reset(counters) if measured else 0
                            target = "keyed" if store.endswith("+key") else "orders"
                            run = run_load(server.port, c, args.seconds, target)
                            results[(store, c)].append(run)
                            if measured and run["requests"]:
                                cost = per_create(counters, before, run["requests"])
                                costs[(store, c)].append(cost)
                    finally:
                        server.stop()
    finally:
        stub.stop()

    print(
        f"\nPOST /orders through orders-local serve (uvicorn), {args.rounds} rounds x "
        f"{args.seconds:g}s, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        "{:<20}{:>6}{:>9}{:>9}{:>9}{:>8}".format(
            "store", "conns", "req/s", "p50 ms", "p99 ms", "errors"
        )
    )
    rows = []
    for c in counts:
        for store in stores:
            runs = results[(store, c)]
            row = {
                "store": store,
                "connections": c,
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] or 0 for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] or 0 for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "runs": runs,
            }
            rows.append(row)
            print(
                f"{store:<20}{c:>6}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                f"{row['errors']:>8}"
            )
    cost_rows = {}
    for (store, c), measured in costs.items():
        if measured:
            row = {k: statistics.median(m[k] for m in measured) for k in measured[0]}
            cost_rows[f"{store}/{c}"] = row
            figures = ", ".join(f"{k} {v:.2f}" for k, v in row.items())
            print(f"{store} per create at {c} connections: {figures}")
    out = save(
        "stores",
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "rows": rows,
            "postgres_per_create": cost_rows,
        },
    )
    print(f"wrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
