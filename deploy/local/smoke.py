#!/usr/bin/env python3
"""Smoke test of an installed local runtime: start, create, read, confirm, cancel, stop.

    python deploy/local/smoke.py [--orders-local PATH]

Starts ``orders-local serve`` on a free loopback port with a throwaway database, drives one
order through its life over HTTP, stops the server with SIGTERM and checks it exited 0 with
every event delivered. Prints one line per step; exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def step(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        raise SystemExit(1)


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        hdrs = {"content-type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers={**hdrs, **(headers or {})})
        response = conn.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            json.loads(response.read()),
        )
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders-local",
        default=shutil.which("orders-local") or "",
        help="the orders-local executable (default: from PATH)",
    )
    args = parser.parse_args()
    command = (
        [args.orders_local] if args.orders_local else [sys.executable, "-m", "orders_local.cli"]
    )

    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp, "events.jsonl")
        proc = subprocess.Popen(
            [
                *command,
                "serve",
                "--port",
                "0",
                "--db",
                str(Path(tmp, "smoke.db")),
                "--sink",
                f"file:{events}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            port = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not port:
                line = proc.stderr.readline()
                if not line:
                    break
                if match := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
                    port = int(match.group(1))
            step("start", port > 0, f"port {port}")

            status, headers, order = call(
                port, "POST", "/orders", b'{"items":[{"id":"sku-1","qty":2}]}'
            )
            step("create", status == 201 and order["status"] == "PENDING", order.get("orderId", ""))
            location = headers["location"]
            status, headers, order = call(port, "GET", location)
            step("read", status == 200 and headers["etag"] == '"1"')
            status, headers, order = call(
                port, "POST", f"{location}/confirm", headers={"if-match": '"1"'}
            )
            step("confirm", status == 200 and order["status"] == "CONFIRMED")
            status, _, order = call(
                port,
                "POST",
                f"{location}/cancel",
                b'{"reason":"smoke test"}',
                {"if-match": headers["etag"]},
            )
            step("cancel", status == 200 and order["status"] == "CANCELLED")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        step(
            "stop",
            proc.returncode == 0,
            f"exit {proc.returncode}" + (f"; {err[-500:]}" if proc.returncode else ""),
        )
        types = [
            json.loads(line)["type"].split(".")[-2] for line in events.read_text().splitlines()
        ]
        step("events", types == ["created", "confirmed", "cancelled"], ", ".join(types))
    return 0


if __name__ == "__main__":
    sys.exit(main())
