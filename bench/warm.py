"""Warm overhead: microseconds per create-order invocation, in one process.

    python bench/warm.py [--rounds 5] [--calls 2000]

Every style writes to memory instead of DynamoDB (ours: the in-memory store; peers: a dict
behind a fake ``put_item``) and logs one JSON line per request to /dev/null. Styles alternate
within each round; medians of per-round means.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# bench/_child.py: each script runs with bench/ first on sys.path
from _child import FAKE_AWS, save

ROOT = Path(__file__).resolve().parents[1]
REAL_STDOUT = sys.stdout
sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - every style's log line goes here
sys.path.insert(0, str(ROOT))
os.environ.update({**FAKE_AWS, "ORDERS_TABLE": "orders", "POWERTOOLS_SERVICE_NAME": "orders"})


class MemoryTable:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.items[kwargs["Item"]["pk"]["S"]] = kwargs["Item"]
        return {}


def styles() -> dict[str, Any]:
    from bench.peers import fastapi_mangum, handwritten, powertools

    from orders_aws import apigw, logs
    from orders_aws.bootstrap import AwsConfig, build
    from orders_core.testing.memory import InMemoryStore

    logs.configure()  # our JSON formatter on the root logger -> /dev/null (sys.stdout)
    rt = build(AwsConfig(table="orders"), MemoryTable())  # type: ignore[arg-type]
    rt.service.store = InMemoryStore()
    for module in (handwritten, powertools, fastapi_mangum):
        module.client = MemoryTable()  # type: ignore[assignment]
    return {
        "orders-core": lambda e, c: apigw.handle(e, c, rt),
        "hand-written": handwritten.handler,
        "powertools": powertools.handler,
        "fastapi+mangum": fastapi_mangum.handler,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    from bench.peers.common import Context, event

    handlers = styles()
    ctx = Context()
    for fn in handlers.values():
        for _ in range(200):
            assert fn(event(), ctx)["statusCode"] == 201
    per_round: dict[str, list[float]] = {name: [] for name in handlers}
    for i in range(args.rounds):
        names = list(handlers) if i % 2 == 0 else list(reversed(handlers))
        for name in names:
            fn = handlers[name]
            events = [event() for _ in range(args.calls)]
            start = time.perf_counter()
            for e in events:
                fn(e, ctx)
            per_round[name].append((time.perf_counter() - start) / args.calls * 1e6)
    med = {name: statistics.median(v) for name, v in per_round.items()}
    pt = med["powertools"]
    print(
        f"\nWarm create-order invocation, in-memory store, one JSON log line each; "
        f"{args.rounds} rounds x {args.calls} calls, median us/call",
        file=REAL_STDOUT,
    )
    print(f"{'style':<16}{'us/call':>9}{'x powertools':>14}", file=REAL_STDOUT)
    for name, value in med.items():
        print(f"{name:<16}{value:>9.0f}{value / pt:>14.2f}", file=REAL_STDOUT)
    save("warm", {"median_us": med, "rounds": per_round})
    return 0


if __name__ == "__main__":
    sys.exit(main())
