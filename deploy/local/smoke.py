#!/usr/bin/env python3
"""Smoke test of an installed local runtime: start, create, read, confirm, cancel, stop.

    python deploy/local/smoke.py [--orders-local PATH]

Starts ``orders-local serve`` on a free loopback port with a throwaway database, drives one
order through its life over HTTP, stops the server with SIGTERM and checks it exited 0 with
every event delivered. Prints one line per step; exits non-zero on the first failure.

Finds ``orders-local`` beside the Python running this script (``.venv/bin/python
deploy/local/smoke.py`` needs no activated venv), then on PATH, then as ``python -m
orders_local.cli``; ``--orders-local ""`` forces the last.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
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


def find_orders_local() -> str | None:
    """``orders-local`` beside this interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name("orders-local")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("orders-local")


def server_command(executable: str | None) -> list[str]:
    """How to start the server, or a FAIL line that says what is missing."""
    if executable:
        return [executable]
    if importlib.util.find_spec("orders_local") is not None:
        return [sys.executable, "-m", "orders_local.cli"]
    step(
        "start",
        False,
        f"orders-local not found: not beside {sys.executable}, not on PATH, and this Python "
        "cannot import orders_local. Install orders-core (python3 -m venv .venv && "
        ".venv/bin/python -m pip install -e .), then run this script with that venv's "
        "python, or pass --orders-local PATH",
    )
    raise AssertionError("unreachable")  # step() exits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders-local",
        default=None,
        help="the orders-local executable (default: beside this Python, else from PATH; "
        "'' runs python -m orders_local.cli)",
    )
    args = parser.parse_args()
    chosen = find_orders_local() if args.orders_local is None else args.orders_local
    command = server_command(chosen)

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
            said: list[str] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not port:
                line = proc.stderr.readline()
                if not line:
                    break
                said.append(line)
                if match := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
                    port = int(match.group(1))
            if not port:
                proc.kill()
                rest = proc.communicate(timeout=10)[1]
                why = "".join(said) + rest
                step("start", False, f"{' '.join(command)} did not start: {why.strip()[-800:]}")
            step("start", True, f"port {port}")

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
