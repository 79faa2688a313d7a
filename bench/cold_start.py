"""Cold start: fresh process -> import the HTTP entrypoint -> first POST /orders answered.

    python bench/cold_start.py [--runs 9]

Every variant creates its boto3 DynamoDB client at init, as in production, and the one
PutItem is answered by botocore's Stubber (same work minus the network). Variants, alternated
within each round: our ``orders_aws.apigw``; a hand-written handler (json + pydantic +
boto3); Powertools (APIGatewayHttpResolver + Logger); FastAPI + Mangum. Each runs once first to
write its bytecode caches, as a Lambda bundle ships them; PYTHONDONTWRITEBYTECODE is removed
from the children's environment for that reason. Prints medians of wall time (process start
to response, interpreter start-up included), peak RSS, and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

# bench/_child.py: each script runs with bench/ first on sys.path
from _child import FAKE_AWS, save, timed

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import time
t0 = time.perf_counter()
import json, resource, sys
sys.path.insert(0, {root!r})
{setup}
from botocore.stub import Stubber
stub = Stubber(client)
stub.add_response("put_item", {{}})
stub.activate()
from bench.peers.common import Context, event
out = mod.handler(event(), Context())
assert out["statusCode"] == 201, out
print("RESULT " + json.dumps({{"ms": (time.perf_counter() - t0) * 1000,
      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

VARIANTS = {
    "orders-core": (
        "import orders_aws.apigw as mod\nfrom orders_aws.bootstrap import runtime\n"
        "client = runtime().dynamodb"
    ),
    "hand-written": "import bench.peers.handwritten as mod\nclient = mod.client",
    "powertools": "import bench.peers.powertools as mod\nclient = mod.client",
    "fastapi+mangum": "import bench.peers.fastapi_mangum as mod\nclient = mod.client",
}


def once(setup: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({**FAKE_AWS, "ORDERS_TABLE": "orders", "POWERTOOLS_SERVICE_NAME": "orders"})
    wall, stdout = timed([sys.executable, "-c", CHILD.format(root=str(ROOT), setup=setup)], env)
    (line,) = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    return {"wall_ms": wall, "inner_ms": result["ms"], "rss_mb": result["rss_mb"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    for setup in VARIANTS.values():
        once(setup)  # write bytecode caches
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for i in range(args.runs):
        order = list(VARIANTS) if i % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            runs[name].append(once(VARIANTS[name]))
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    hand, fast = med["hand-written"]["wall_ms"], med["fastapi+mangum"]["wall_ms"]
    print(
        f"\nCold start to first POST /orders, {args.runs} runs, medians; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    header = ("variant", "wall ms", "in-proc ms", "RSS MB", "x hand", "x fastapi")
    print("{:<16}{:>9}{:>12}{:>8}{:>8}{:>11}".format(*header))
    for name, m in med.items():
        print(
            f"{name:<16}{m['wall_ms']:>9.0f}{m['inner_ms']:>12.0f}{m['rss_mb']:>8.1f}"
            f"{m['wall_ms'] / hand:>8.2f}{m['wall_ms'] / fast:>11.2f}"
        )
    save("cold_start", {"medians": med, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
