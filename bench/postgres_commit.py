"""What commit order costs PostgreSQL: ``apply_change`` creates/s from pgbench (a C client,
so Python is not the limit), with the outbox's advisory lock and without it.

    python bench/postgres_commit.py [--rounds 3] [--seconds 3] [--clients 1,16,64]

The lock (docs/decisions/0019) serializes every change's outbox insert and commit, so
creates/s can reach at most 1 / (insert + WAL flush); without it PostgreSQL may share one
flush among concurrent commits. The variant without the lock is the same function with
that one statement removed, in a schema of its own: a measurement, not an option of the
store. A local server with fsync and synchronous_commit on; reports creates/s, mean latency
and WAL syncs per create (pg_stat_wal). Prints medians; asserts nothing; writes
bench/results/postgres_commit.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _child import save

HERE = Path(__file__).resolve().parent
CREATE = (
    "SELECT {s}.apply_change(gen_random_uuid()::text, 'c-1', 1, 1, 'anonymous:', "
    '\'{{"orderId":"x"}}\', 0, now(), ARRAY[gen_random_uuid()::text], '
    "ARRAY['{{\"id\":\"x\"}}'], NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'PENDING', NULL);\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", default="1,16,64")
    args = parser.parse_args()
    import psycopg

    from orders_postgres.driver import Database
    from orders_postgres.store import PostgresStore
    from orders_postgres.testing import TestServer

    server = TestServer(durable=True).start()
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        conn = psycopg.connect(server.url, autocommit=True)
        for schema in ("locked", "unlocked"):
            database = Database(server.url, min_size=1, max_size=1)
            database.open()
            PostgresStore(database, schema=schema)
            database.close()
        source = conn.execute(
            "SELECT pg_get_functiondef('unlocked.apply_change'::regproc)"
        ).fetchone()[0]
        conn.execute(re.sub(r"PERFORM pg_advisory_xact_lock\([-0-9]+\);", "", source))
        os.chmod(server.root, 0o755)  # pgbench runs as us, the scripts live beside the data
        scripts = {}
        for schema in ("locked", "unlocked"):
            scripts[schema] = server.root / f"{schema}.sql"
            scripts[schema].write_text(CREATE.format(s=schema))
        clients = [int(c) for c in args.clients.split(",")]
        for rnd in range(args.rounds):
            variants = ("locked", "unlocked") if rnd % 2 == 0 else ("unlocked", "locked")
            for variant in variants:
                for n in clients:
                    results.setdefault((variant, n), []).append(
                        pgbench(server, conn, scripts[variant], n, args.seconds)
                    )
        conn.close()
    finally:
        server.destroy()

    print(
        f"\napply_change creates/s from pgbench, {args.rounds} rounds x {args.seconds:g}s, "
        f"fsync on, {os.cpu_count()} cores"
    )
    print(
        "{:<10}{:>8}{:>11}{:>10}{:>13}".format(
            "variant", "clients", "creates/s", "mean ms", "syncs/create"
        )
    )
    rows = []
    for n in clients:
        for variant in ("locked", "unlocked"):
            runs = results[(variant, n)]
            row: dict[str, Any] = {
                "variant": variant,
                "clients": n,
                **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
                "runs": runs,
            }
            rows.append(row)
            print(
                f"{variant:<10}{n:>8}{row['tps']:>11.0f}{row['latency_ms']:>10.2f}"
                f"{row['syncs']:>13.2f}"
            )
    out = save(
        "postgres_commit",
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
            "rows": rows,
        },
    )
    print(f"wrote {out.relative_to(HERE.parent)}")
    return 0


def pgbench(server: Any, conn: Any, script: Path, clients: int, seconds: float) -> dict[str, float]:
    syncs = int(conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0])
    out = subprocess.run(
        [str(server.bin / "pgbench"), "-n", "-M", "prepared", "-c", str(clients),
         "-j", str(min(clients, 2)), "-T", str(max(1, round(seconds))), "-f", str(script),
         server.url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    done = int(re.search(r"actually processed: (\d+)", out.stdout).group(1))  # type: ignore[union-attr]
    syncs = int(conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0]) - syncs
    return {
        "tps": float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1)),  # type: ignore[union-attr]
        "latency_ms": float(re.search(r"latency average = ([0-9.]+) ms", out.stdout).group(1)),  # type: ignore[union-attr]
        "syncs": syncs / max(done, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
