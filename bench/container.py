"""The container path: ``orders-local serve --store dynamodb`` vs FastAPI on uvicorn[standard]
doing one PutItem, against a DynamoDB endpoint that answers after 0, 4 or 20 ms.

    python bench/container.py [--rounds 2] [--seconds 3] [--delays 0,4,20] [--connections 16,64]
                              [--workers 1,2] [--cpu-affinity] [--granian] [--keyed]

The endpoint is bench/_dynamodb_stub.py (asyncio on loopback, one process per delay), measured
alone first so it is known not to be the limit. Each server runs in its own process and
the load comes from bench/local_http.py's generator in another; the two servers alternate
within every round. Reports req/s, p50/p99 and the share of the latency bound
(connections / delay: what a server that overlaps every round trip could reach). Works with
whatever server ``orders-local serve`` runs; prints figures, asserts none. Writes
bench/results/container.json. Bounded: rounds x delays x servers x connection counts x
seconds, loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _child import FAKE_AWS, save
from local_http import REQUEST, Server, load

HERE = Path(__file__).resolve().parent
TABLE = "bench"
PUT_BODY = b'{"TableName":"bench","Item":{"pk":{"S":"ORDER#1"},"sk":{"S":"ORDER"}}}'
PUT_REQUEST = (
    b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-amz-json-1.0\r\n"
    b"x-amz-target: DynamoDB_20120810.PutItem\r\n"
    b"content-length: " + str(len(PUT_BODY)).encode() + b"\r\n\r\n" + PUT_BODY
)


def keyed_requests() -> Callable[[], bytes]:
    """Creates with an Idempotency-Key, a new one each (this process's own prefix), so
    every request is a first delivery on any store, never a replay: the DynamoDB store
    commits it in one conditional PutItem, the record inside the order, and reads the key
    only if that write is refused."""
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    prefix = b"%s\r\nidempotency-key: bench-%s-" % (head, uuid.uuid4().hex[:12].encode())
    tail = b"\r\n\r\n" + body
    counter = itertools.count()
    return lambda: b"%s%d%s" % (prefix, next(counter), tail)


def start(name: str, endpoint: str) -> Server:
    name = name.removesuffix("+key")  # the same server, sent keyed requests
    if name == "stub":
        return Server(name, [sys.executable, str(HERE / "_dynamodb_stub.py"), endpoint])
    if name.startswith("fastapi"):  # "fastapi+pin": the peer on one CPU, as ours pins
        argv = [sys.executable, str(HERE / "_fastapi_putitem_server.py"), endpoint, TABLE]
        return Server(name, [*argv, *(["--pin"] if name.endswith("+pin") else [])])
    if name == "granian":  # the same app on granian (decision 0014 measured it once)
        return Server(name, [sys.executable, str(HERE / "_granian_server.py"), endpoint, TABLE])
    return Server(
        name,
        [
            sys.executable,
            "-m",
            "orders_local.cli",
            "serve",
            "--port",
            "0",
            "--store",
            "dynamodb",
            "--table",
            TABLE,
            "--endpoint-url",
            endpoint,
            # "orders-local/w2": `--workers 2`, once the front end has the option (issue 18)
            *(["--workers", name.partition("/w")[2].removesuffix("+pin")] if "/w" in name else []),
            *(["--cpu-affinity", "auto"] if name.endswith("+pin") else []),
        ],
    )


def run_load(port: int, connections: int, seconds: float, target: str = "orders") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--load", target, str(port), str(connections), str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed: {out.stderr}")
    return dict(json.loads(out.stdout))


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] or 0 for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] or 0 for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--delays", default="0,4,20", help="the endpoint's delay, ms")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument(
        "--workers", default="", help="e.g. 1,2: orders-local serve --workers N for each N"
    )
    parser.add_argument(
        "--cpu-affinity",
        action="store_true",
        help="also each orders-local setup with --cpu-affinity auto (+pin), and the peer "
        "pinned to one CPU alike (fastapi+pin)",
    )
    parser.add_argument(
        "--granian", action="store_true", help="also the same app on granian (pip install granian)"
    )
    parser.add_argument(
        "--keyed",
        action="store_true",
        help="also each orders-local setup sent creates with an Idempotency-Key (+key), a new "
        "key each: one conditional PutItem that also holds the key's record, where the peer "
        "makes a plain PutItem",
    )
    parser.add_argument("--load", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        target, port, conns, seconds = args.load
        if target == "stub":
            result = load(int(port), int(conns), float(seconds), PUT_REQUEST, b"200")
        elif target == "keyed":
            result = load(int(port), int(conns), float(seconds), keyed_requests())
        else:
            result = load(int(port), int(conns), float(seconds))
        print(json.dumps(result))
        return 0

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("fastapi/uvicorn not installed: run it in `nox -s bench`", file=sys.stderr)
        return 1
    os.environ.update(FAKE_AWS)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children read and keep their pycs
    ours = [f"orders-local/w{n}" for n in args.workers.split(",") if n] or ["orders-local"]
    if args.cpu_affinity:
        ours += [f"{name}+pin" for name in ours]
    if args.keyed:
        ours += [f"{name}+key" for name in ours]
    peers = ["fastapi", *(["fastapi+pin"] if args.cpu_affinity else [])]
    servers = (*ours, *(["granian"] if args.granian else []), *peers)
    delays = [float(d) for d in args.delays.split(",")]
    counts = [int(c) for c in args.connections.split(",")]
    stubs = {d: start("stub", f"{d:g}") for d in delays}
    results: dict[tuple[str, float, int], list[dict[str, Any]]] = {}
    try:
        # The endpoint alone: what it serves when nothing else is in the way.
        for d in delays:
            for c in counts:
                results[("stub", d, c)] = [run_load(stubs[d].port, c, args.seconds, "stub")]
        for rnd in range(args.rounds):
            for d in delays:
                endpoint = f"http://127.0.0.1:{stubs[d].port}"
                for name in servers if rnd % 2 == 0 else reversed(servers):
                    server = start(name, endpoint)
                    try:
                        target = "keyed" if name.endswith("+key") else "orders"
                        run_load(server.port, 4, 0.5, target)  # warm-up: imports, pools
                        for c in counts:
                            run = run_load(server.port, c, args.seconds, target)
                            results.setdefault((name, d, c), []).append(run)
                    finally:
                        server.stop()
    finally:
        for stub in stubs.values():
            stub.stop()

    print(
        f"\nPOST /orders against a DynamoDB endpoint answering after a fixed delay; "
        f"{args.rounds} rounds x {args.seconds:g}s, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    header = (
        "server",
        "delay",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "x bound",
        "x fastapi",
    )
    print("{:<24}{:>6}{:>6}{:>9}{:>9}{:>9}{:>7}{:>9}{:>10}".format(*header))
    rows = []
    for d in delays:
        for c in counts:
            bound = c / (d / 1000) if d else None
            peer = median_row(results[("fastapi", d, c)])["rps"]
            for name in ("stub", *servers):
                row = {
                    "server": name,
                    "delay_ms": d,
                    "connections": c,
                    **median_row(results[(name, d, c)]),
                }
                row["bound_rps"] = bound
                row["of_bound"] = row["rps"] / bound if bound else None
                row["x_fastapi"] = row["rps"] / peer if peer and name != "stub" else None
                rows.append(row)
                of_bound = f"{row['of_bound']:.2f}" if row["of_bound"] is not None else "-"
                x_peer = f"{row['x_fastapi']:.2f}" if row["x_fastapi"] is not None else "-"
                print(
                    f"{name:<24}{d:>6g}{c:>6}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}"
                    f"{row['p99_ms']:>9.2f}{row['errors']:>7}{of_bound:>9}{x_peer:>10}"
                )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    out = save(
        "container",
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": commit,
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "rows": rows,
        },
    )
    print(f"wrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
