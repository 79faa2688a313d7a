"""POST /orders throughput and latency: the local runtime vs a trivial stdlib baseline and
Starlette on uvicorn[standard] (httptools + uvloop) doing the baseline's work.

    python bench/local_http.py [--rounds 3] [--seconds 3] [--connections 4,16]
                               [--servers baseline,orders-local,starlette]

Each server runs in its own process; the load comes from a third process: one thread,
``selectors``, one keep-alive connection per simulated client. Servers alternate within
every round, so drift and noise on this 2-core machine hit all alike. Prints medians over
rounds, the ratio to the baseline, and writes bench/results/local_http.json. Bounded:
rounds x servers x connection counts x seconds, loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/_child.py: each script runs with bench/ first on sys.path
from _child import save

HERE = Path(__file__).resolve().parent
BODY = b'{"items":[{"id":"sku-1","qty":2},{"id":"sku-2","qty":1},{"id":"sku-3","qty":5}]}'


# -- the load generator (runs in its own process) -------------------------------------------


REQUEST = (
    b"POST /orders HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


def load(
    port: int,
    connections: int,
    seconds: float,
    request: bytes | Callable[[], bytes] = REQUEST,
    ok: bytes = b"201",
) -> dict[str, Any]:
    """Closed-loop load: each connection sends its next request when the last answer is in;
    an answer whose status is not ``ok`` counts as an error. ``request``: the same bytes
    every time, or a function that makes each request (a new Idempotency-Key each).

    One thread multiplexes every connection with ``selectors`` and pre-encoded requests, so
    the generator spends ~20 us per request, not the ~300 us of ``http.client`` in threads:
    with 2 cores, a heavier generator would cap every server at its own speed (it did: the
    first version of this benchmark read ~2,500 req/s for every fast server).
    """
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    latencies: list[float] = []
    errors = 0
    buffers = {s.fileno(): b"" for s in socks}
    sent_at: dict[int, float] = {}
    next_request = request if callable(request) else lambda: request
    began = time.perf_counter()
    stop_at = began + seconds
    for sock in socks:
        sent_at[sock.fileno()] = time.perf_counter()
        sock.sendall(next_request())
        sel.register(sock, selectors.EVENT_READ)
    while sent_at:
        for key, _ in sel.select(timeout=10):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            fd = sock.fileno()
            chunk = sock.recv(65536)
            if not chunk:
                errors += 1
                sel.unregister(sock)
                sent_at.pop(fd, None)
                continue
            buf = buffers[fd] + chunk
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                buffers[fd] = buf
                continue
            length = content_length(buf[:head_end])
            if len(buf) < head_end + 4 + length:
                buffers[fd] = buf
                continue
            buffers[fd] = buf[head_end + 4 + length :]
            now = time.perf_counter()
            latencies.append(now - sent_at[fd])
            if buf[9:12] != ok:
                errors += 1
            if now >= stop_at:
                sel.unregister(sock)
                del sent_at[fd]
                continue
            sent_at[fd] = now
            sock.sendall(next_request())
    elapsed = time.perf_counter() - began
    for sock in socks:
        sock.close()
    flat = sorted(latencies)
    if not flat:
        return {"rps": 0.0, "p50_ms": None, "p99_ms": None, "requests": 0, "errors": errors}
    return {
        "rps": len(flat) / elapsed,
        "p50_ms": flat[len(flat) // 2] * 1000,
        "p99_ms": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
        "requests": len(flat),
        "errors": errors,
    }


def content_length(head: bytes) -> int:
    at = head.lower().find(b"content-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at)
    return int(head[at + 15 : end if end > 0 else None])


# -- servers ----------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if match := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
                self.port = int(match.group(1))
                # Keep draining stderr so access-log lines never block the server.
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                if _accepts(self.port, deadline):  # the Starlette peer says it before binding
                    return
                break
            if not line:
                break
        self.proc.kill()
        raise RuntimeError(f"{name} did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _accepts(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


SERVERS = ("baseline", "orders-local", "starlette")


def start(name: str, tmp: Path) -> Server:
    db = str(tmp / f"{name}-{time.monotonic_ns()}.db")
    if name == "baseline":
        return Server(name, [sys.executable, str(HERE / "_baseline_server.py"), db])
    if name == "starlette":
        return Server(name, [sys.executable, str(HERE / "_starlette_server.py"), db])
    argv = [sys.executable, "-m", "orders_local.cli", "serve", "--port", "0", "--db", db]
    argv += ["--sink", f"file:{tmp / 'events.jsonl'}"]
    return Server(name, argv)


def run_load(server: Server, connections: int, seconds: float) -> dict[str, Any]:
    """The load's figures, plus the CPU the server spent per answer: its own process (all
    threads) and its children (the relay process), read from /proc around the load."""
    before = _cpu(server.proc.pid)
    out = subprocess.run(
        [sys.executable, __file__, "--load", str(server.port), str(connections), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    after = _cpu(server.proc.pid)
    result = dict(json.loads(out.stdout))
    answers = max(1, result["requests"])
    if before is not None and after is not None:
        result["cpu_us"] = (after[0] - before[0]) / answers * 1e6
        result["children_cpu_us"] = (after[1] - before[1]) / answers * 1e6
    return result


def _cpu(pid: int) -> tuple[float, float] | None:
    """CPU seconds of ``pid`` and of its live descendants (Linux /proc; None elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu seconds)
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    if pid not in stats:
        return None
    children = 0.0
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cpu) in stats.items():
            if ppid == parent:
                children += cpu
                frontier.append(child)
    return stats[pid][1], children


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", default="4,16")
    parser.add_argument(
        "--servers",
        default="baseline,orders-local,starlette",
        help=f"among {', '.join(SERVERS)}",
    )
    parser.add_argument("--load", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        port, conns, seconds = args.load
        print(json.dumps(load(int(port), int(conns), float(seconds))))
        return 0

    counts = [int(c) for c in args.connections.split(",")]
    servers = args.servers.split(",")
    if unknown := [s for s in servers if s not in SERVERS]:
        parser.error(f"unknown server(s) {', '.join(unknown)}: choose among {', '.join(SERVERS)}")
    if "starlette" in servers:
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            print("starlette/uvicorn not installed: that baseline is left out", file=sys.stderr)
            servers.remove("starlette")
    results: dict[tuple[str, int], list[dict[str, Any]]] = {
        (s, c): [] for s in servers for c in counts
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name in servers if rnd % 2 == 0 else reversed(servers):
                server = start(name, Path(tmp))
                try:
                    run_load(server, 4, 0.5)  # warm-up: imports, connections, page cache
                    for c in counts:
                        results[(name, c)].append(run_load(server, c, args.seconds))
                finally:
                    server.stop()

    rows = []
    print(
        f"\nPOST /orders, 3-item body, {args.rounds} rounds x {args.seconds:g}s, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    header = ("server", "conns", "req/s", "p50 ms", "p99 ms", "errors", "x base", "x star")
    header += ("cpu us", "+child")
    print("{:<16}{:>6}{:>9}{:>9}{:>9}{:>8}{:>8}{:>8}{:>8}{:>8}".format(*header))
    for c in counts:
        for name in servers:
            runs = results[(name, c)]
            row = {
                "server": name,
                "connections": c,
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "runs": runs,
                # Each round's servers ran in the same minutes: the median of the per-round
                # ratios is steadier than a ratio of medians on this noisy machine.
                "ratio": _paired(runs, results.get(("baseline", c))),
                "x_starlette": _paired(runs, results.get(("starlette", c))),
                # server CPU per answer, all its threads; +child: its relay process
                "cpu_us": _median_of(runs, "cpu_us"),
                "children_cpu_us": _median_of(runs, "children_cpu_us"),
            }
            rows.append(row)
            print(
                f"{name:<16}{c:>6}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                f"{row['errors']:>8}{_ratio(row['ratio']):>8}{_ratio(row['x_starlette']):>8}"
                f"{_us(row['cpu_us']):>8}{_us(row['children_cpu_us']):>8}"
            )
    out = save(
        "local_http",
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
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


def _paired(runs: list[dict[str, Any]], peer: list[dict[str, Any]] | None) -> float | None:
    """The median over rounds of this server's req/s over the peer's in the same round."""
    if not peer:
        return None
    return statistics.median(r["rps"] / p["rps"] for r, p in zip(runs, peer, strict=True))


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
