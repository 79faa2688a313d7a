"""What the OpenTelemetry SDK adds to a Lambda cold start.

    python bench/cold_start_otel.py [--runs 7]

Each run is a fresh interpreter that does what a Lambda execution environment does on its
first request: import the HTTP entrypoint's modules, build the runtime from the environment
(boto3 DynamoDB client included), and answer one ``POST /orders`` API Gateway event. The
table is replaced by the in-memory store after the client is built, so no network is used.
Variants, alternated within each round: SDK off (no OTEL_* variables), ``console`` exporter
(to /dev/null), and ``otlp`` (OTLP/HTTP to a stub collector on 127.0.0.1 that answers 200:
import, set-up and one export at flush). Prints medians and the difference to "off".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

# bench/_child.py: each script runs with bench/ first on sys.path
from _child import FAKE_AWS, save, timed

CHILD = r"""
import time, json, os, sys
t0 = time.perf_counter()
from orders_aws import apigw, bootstrap
from orders_core.testing.memory import InMemoryStore
rt = bootstrap.runtime()
rt.service.store = InMemoryStore()      # same work minus the network
event = {"version": "2.0", "rawPath": "/orders", "rawQueryString": "",
         "headers": {"content-type": "application/json"},
         "requestContext": {"http": {"method": "POST", "path": "/orders"}},
         "body": '{"items":[{"id":"sku-1","qty":2},{"id":"sku-2","qty":1},{"id":"sku-3","qty":5}]}',
         "isBase64Encoded": False}
class Ctx:
    aws_request_id = "r-1"; function_name = "bench"
    def get_remaining_time_in_millis(self): return 10_000
out = apigw.handle(event, Ctx(), rt)
assert out["statusCode"] == 201, out
print(json.dumps({"ms": (time.perf_counter() - t0) * 1000}))
"""

VARIANTS = {
    "sdk off": {},
    "sdk console": {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"},
    "sdk otlp": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none"},
}


def stub_collector() -> str:
    """A loopback OTLP/HTTP endpoint that accepts everything (bounded: this process only)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def run(extra: dict[str, str]) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({**FAKE_AWS, "ORDERS_TABLE": "bench", "LOG_LEVEL": "WARNING", **extra})
    wall, stdout = timed([sys.executable, "-c", CHILD], env)
    line = [x for x in stdout.splitlines() if x.startswith('{"ms"')][-1]
    return wall, float(json.loads(line)["ms"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    VARIANTS["sdk otlp"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = stub_collector()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(args.runs):
        for name, extra in VARIANTS.items():
            results[name].append(run(extra))
    base = statistics.median(w for w, _ in results["sdk off"])
    print(
        f"\nLambda-like cold start, {args.runs} fresh processes per variant, medians "
        f"(PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})"
    )
    print(f"{'variant':<14}{'process ms':>12}{'in-process ms':>15}{'+ms vs off':>12}")
    rows = {}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        inner = statistics.median(i for _, i in runs)
        rows[name] = {"process_ms": wall, "import_to_first_response_ms": inner}
        print(f"{name:<14}{wall:>12.0f}{inner:>15.0f}{wall - base:>12.0f}")
    save("cold_start_otel", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
