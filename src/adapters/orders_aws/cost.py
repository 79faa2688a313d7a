"""``orders-cost``: what a traffic profile costs per month, three ways, before you deploy.

    orders-cost --requests-per-month 50000000
    orders-cost --peak-rpm 10000 --base-rpm 0 --peak-hours 2      # bursty
    orders-cost --peak-rpm 60000 --base-rpm 50000                   # sustained
    orders-cost ... --memory 1024 --arch x86_64 --p50-ms 15 --p95-ms 45 --plot cost.png

Options compared, each with DynamoDB on demand, EventBridge and SQS for the event path:

1. **on demand**: Lambda + HTTP API, paying per request and per GB-second;
2. **provisioned**: the same with provisioned concurrency sized for the peak
   (Little's law: peak rate x p95 duration x headroom);
3. **container**: Fargate tasks running ``orders-local serve --store dynamodb`` behind an
   ALB, sized for the peak (at least two for availability) from what one worker served in
   ``bench/container.py``: ``throughput.json`` gives requests/s per vCPU, with the bench,
   its date and conditions; ``--task-rps`` overrides it with your own measurement.

It names the cheapest and the break-even sustained request rate between on demand and each
alternative. Prices come from ``prices.json`` (region and date inside), overridable with
``--prices``; nothing is fetched. Durations default to figures from the benchmarks plus a
DynamoDB round trip (see ``DEFAULT_P50_MS``); measure yours and pass them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from orders_aws.prices import CostError, load_prices, load_throughput

SECONDS_PER_MONTH: Final = 730 * 3600  # AWS bills a month as 730 hours
HOURS_PER_MONTH: Final = 730
DEFAULT_P50_MS: Final = 12.0
"""0.09 ms of our code warm (bench/warm.py) + ~10 ms for one in-region DynamoDB write (an
assumption: no Lambda here to measure it), billed in whole milliseconds."""
DEFAULT_P95_MS: Final = 40.0
MEASURED: Final = load_throughput()
"""Container throughput from bench/container.py (throughput.json: bench, date, source)."""
ARCHITECTURES: Final = ("arm64", "x86_64")


@dataclass(frozen=True)
class Profile:
    """A month of traffic: a peak rate for ``peak_hours`` a day, a base rate the rest."""

    peak_rps: float
    base_rps: float
    peak_hours: float = 24.0

    @classmethod
    def flat(cls, rps: float) -> Profile:
        return cls(rps, rps, 24.0)

    @classmethod
    def from_monthly(cls, requests: float) -> Profile:
        return cls.flat(requests / SECONDS_PER_MONTH)

    def requests_per_month(self) -> float:
        day = self.peak_hours * 3600 * self.peak_rps + (24 - self.peak_hours) * 3600 * self.base_rps
        return day * SECONDS_PER_MONTH / 86400

    def check(self) -> None:
        if self.peak_rps < 0 or self.base_rps < 0:
            raise CostError("request rates cannot be negative")
        if self.base_rps > self.peak_rps:
            raise CostError("the base rate cannot exceed the peak rate")
        if not 0 <= self.peak_hours <= 24:
            raise CostError("peak hours must be between 0 and 24")


@dataclass(frozen=True)
class Function:
    memory_mb: int = 512
    arch: str = "arm64"
    p50_ms: float = DEFAULT_P50_MS
    p95_ms: float = DEFAULT_P95_MS
    write_units: float = 1.0
    read_units: float = 0.0
    events_per_request: float = 1.0
    sqs_requests_per_event: float = 3.0  # send, receive, delete
    headroom: float = 1.2
    task_rps: float | None = None
    """Requests/s one task serves; None: :data:`MEASURED` per vCPU x ``task_vcpu``."""
    task_vcpu: float = 1.0
    task_gb: float = 2.0
    min_tasks: int = 2
    free_tier: bool = False

    def check(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise CostError(f"unknown architecture {self.arch!r}: use arm64 or x86_64")
        if not 128 <= self.memory_mb <= 10240:
            raise CostError("Lambda memory must be 128 to 10240 MB")
        if self.p50_ms <= 0 or self.p95_ms < self.p50_ms:
            raise CostError("durations must be positive, with p95 >= p50")
        if min(self.write_units, self.read_units, self.events_per_request) < 0:
            raise CostError("capacity units and events per request cannot be negative")
        if (self.task_rps is not None and self.task_rps <= 0) or self.min_tasks < 1:
            raise CostError("a task must serve some requests, and at least one task must run")
        if self.task_vcpu <= 0:
            raise CostError("a task needs some vCPU")

    @property
    def task_capacity(self) -> float:
        """Requests/s one task serves: ``task_rps`` if given, else measured (one worker
        per vCPU: a worker is one process, and the GIL keeps it to about one vCPU)."""
        if self.task_rps is not None:
            return self.task_rps
        return float(MEASURED["rps_per_vcpu"]) * self.task_vcpu

    def task_capacity_source(self) -> str:
        if self.task_rps is not None:
            return "--task-rps"
        return (
            f"{MEASURED['bench']} on {MEASURED['date']}: {MEASURED['rps_per_vcpu']:g} req/s "
            f"per vCPU x {self.task_vcpu:g} vCPU"
        )

    @property
    def gb(self) -> float:
        return self.memory_mb / 1024

    def mean_billed_seconds(self) -> float:
        """Billed duration, whole milliseconds: most requests at p50, one in twenty at p95."""
        return (0.95 * math.ceil(self.p50_ms) + 0.05 * math.ceil(self.p95_ms)) / 1000


def _per_million(count: float, price: float, free: float = 0.0) -> float:
    return max(0.0, count - free) / 1e6 * price


def shared(requests: float, fn: Function, prices: dict[str, Any]) -> dict[str, float]:
    """What every option pays: the table and the event path."""
    events = requests * fn.events_per_request
    sqs_free = prices["sqs"]["free_requests"] if fn.free_tier else 0
    return {
        "dynamodb": _per_million(
            requests * fn.write_units, prices["dynamodb"]["write_request_unit_per_million"]
        )
        + _per_million(
            requests * fn.read_units, prices["dynamodb"]["read_request_unit_per_million"]
        ),
        "eventbridge": _per_million(events, prices["eventbridge"]["custom_event_per_million"]),
        "sqs": _per_million(
            events * fn.sqs_requests_per_event, prices["sqs"]["request_per_million"], sqs_free
        ),
    }


def on_demand(profile: Profile, fn: Function, prices: dict[str, Any]) -> dict[str, float]:
    requests = profile.requests_per_month()
    lam = prices["lambda"]
    free_req = lam["free_requests"] if fn.free_tier else 0
    free_gbs = lam["free_gb_seconds"] if fn.free_tier else 0
    gb_seconds = requests * fn.mean_billed_seconds() * fn.gb
    api_free = prices["http_api"]["free_requests"] if fn.free_tier else 0
    return {
        "lambda requests": _per_million(requests, lam["request_per_million"], free_req),
        "lambda compute": max(0.0, gb_seconds - free_gbs) * lam["gb_second"][fn.arch],
        "http api": _per_million(requests, prices["http_api"]["request_per_million"], api_free),
        **shared(requests, fn, prices),
    }


def provisioned_concurrency(profile: Profile, fn: Function) -> int:
    """Instances to keep warm for the peak (Little's law, p95 duration, with headroom)."""
    return max(1, math.ceil(profile.peak_rps * fn.p95_ms / 1000 * fn.headroom))


def provisioned(profile: Profile, fn: Function, prices: dict[str, Any]) -> dict[str, float]:
    requests = profile.requests_per_month()
    lam = prices["lambda"]
    instances = provisioned_concurrency(profile, fn)
    gb_seconds = requests * fn.mean_billed_seconds() * fn.gb
    free_req = lam["free_requests"] if fn.free_tier else 0
    api_free = prices["http_api"]["free_requests"] if fn.free_tier else 0
    return {
        "lambda requests": _per_million(requests, lam["request_per_million"], free_req),
        "provisioned concurrency": instances
        * fn.gb
        * SECONDS_PER_MONTH
        * lam["provisioned_gb_second"][fn.arch],
        "lambda compute": gb_seconds * lam["provisioned_duration_gb_second"][fn.arch],
        "http api": _per_million(requests, prices["http_api"]["request_per_million"], api_free),
        **shared(requests, fn, prices),
    }


def container_tasks(profile: Profile, fn: Function) -> int:
    return max(fn.min_tasks, math.ceil(profile.peak_rps * fn.headroom / fn.task_capacity))


def container(profile: Profile, fn: Function, prices: dict[str, Any]) -> dict[str, float]:
    requests = profile.requests_per_month()
    tasks = container_tasks(profile, fn)
    fargate, alb = prices["fargate"], prices["alb"]
    # ALB capacity units: ~1,000 rule evaluations a second each, at the average rate.
    lcus = max(1.0, requests / SECONDS_PER_MONTH / 1000)
    return {
        "fargate": tasks
        * HOURS_PER_MONTH
        * (fn.task_vcpu * fargate["vcpu_hour"][fn.arch] + fn.task_gb * fargate["gb_hour"][fn.arch]),
        "load balancer": HOURS_PER_MONTH * (alb["hour"] + lcus * alb["lcu_hour"]),
        **shared(requests, fn, prices),
    }


OPTIONS: Final[dict[str, Callable[[Profile, Function, dict[str, Any]], dict[str, float]]]] = {
    "on demand": on_demand,
    "provisioned": provisioned,
    "container": container,
}


def monthly(option: str, profile: Profile, fn: Function, prices: dict[str, Any]) -> float:
    return sum(OPTIONS[option](profile, fn, prices).values())


def break_even(other: str, fn: Function, prices: dict[str, Any], high: float = 1e6) -> float | None:
    """The sustained rate (req/s) above which ``other`` is cheaper than on demand, or None.

    On demand grows linearly with traffic; the alternatives are mostly fixed, stepping up
    as instances or tasks are added, so the first crossing is found by bisection after a
    coarse scan for the first rate where the alternative wins.
    """

    def gap(rps: float) -> float:
        profile = Profile.flat(rps)
        return monthly("on demand", profile, fn, prices) - monthly(other, profile, fn, prices)

    lo, hi = 0.0, None
    rate = 0.01
    while rate <= high:
        if gap(rate) > 0:
            hi = rate
            break
        lo, rate = rate, rate * 1.25
    if hi is None:
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if gap(mid) > 0 else (mid, hi)
    return hi


def report(profile: Profile, fn: Function, prices: dict[str, Any]) -> dict[str, Any]:
    profile.check()
    fn.check()
    costs = {name: OPTIONS[name](profile, fn, prices) for name in OPTIONS}
    totals = {name: sum(parts.values()) for name, parts in costs.items()}
    return {
        "requests_per_month": profile.requests_per_month(),
        "peak_rps": profile.peak_rps,
        "costs": costs,
        "totals": totals,
        "cheapest": min(totals, key=lambda n: totals[n]),
        "break_even_rps": {
            name: break_even(name, fn, prices) for name in ("provisioned", "container")
        },
        "provisioned_concurrency": provisioned_concurrency(profile, fn),
        "container_tasks": container_tasks(profile, fn),
        "container_task_rps": fn.task_capacity,
        "container_task_rps_from": fn.task_capacity_source(),
        "prices": {"region": prices.get("region"), "read_on": prices.get("read_on")},
    }


def for_json(result: dict[str, Any]) -> dict[str, Any]:
    """The report as ``--json`` prints it: money in cents, requests whole, rates to 3
    decimals (0.1 + 0.2 arithmetic printed 999999.9999999998 requests)."""

    def cents(parts: dict[str, float]) -> dict[str, float]:
        return {name: round(value, 2) for name, value in parts.items()}

    return {
        **result,
        "requests_per_month": round(result["requests_per_month"]),
        "peak_rps": round(result["peak_rps"], 3),
        "container_task_rps": round(result["container_task_rps"], 3),
        "costs": {name: cents(parts) for name, parts in result["costs"].items()},
        "totals": cents(result["totals"]),
        "break_even_rps": {
            name: None if rps is None else round(rps, 3)
            for name, rps in result["break_even_rps"].items()
        },
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['requests_per_month']:,.0f} requests/month; prices {result['prices']['region']}, "
        f"read {result['prices']['read_on']}",
        "",
        f"{'option':<14}{'USD/month':>12}  breakdown",
    ]
    for name, parts in result["costs"].items():
        detail = ", ".join(f"{k} {v:,.2f}" for k, v in parts.items() if v)
        lines.append(f"{name:<14}{result['totals'][name]:>12,.2f}  {detail}")
    lines.append("")
    lines.append(
        f"cheapest: {result['cheapest']}  (provisioned concurrency "
        f"{result['provisioned_concurrency']}, container tasks {result['container_tasks']})"
    )
    lines.append(
        f"container task: {result['container_task_rps']:,.0f} req/s "
        f"({result['container_task_rps_from']})"
    )
    for name, rps in result["break_even_rps"].items():
        where = (
            "never, up to 1M req/s"
            if rps is None
            else f"{rps:,.1f} req/s ({rps * 60:,.0f} req/min)"
        )
        lines.append(f"break-even on demand vs {name}: {where}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orders-cost",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    traffic = parser.add_argument_group("traffic (a monthly volume, or a daily curve)")
    traffic.add_argument("--requests-per-month", type=float)
    traffic.add_argument("--peak-rpm", type=float, help="requests per minute at peak")
    traffic.add_argument("--base-rpm", type=float, default=0.0, help="requests per minute off peak")
    traffic.add_argument("--peak-hours", type=float, default=24.0, help="hours a day at peak")
    fn = parser.add_argument_group("function")
    fn.add_argument("--memory", type=int, default=512, help="Lambda memory, MB")
    fn.add_argument("--arch", default="arm64", help="arm64 or x86_64")
    fn.add_argument("--p50-ms", type=float, default=DEFAULT_P50_MS)
    fn.add_argument("--p95-ms", type=float, default=DEFAULT_P95_MS)
    fn.add_argument(
        "--write-units",
        type=float,
        default=1.0,
        help="DynamoDB write units per request (bench/write_cost.py: 1; 2 with a key)",
    )
    fn.add_argument("--read-units", type=float, default=0.0)
    fn.add_argument(
        "--task-rps",
        type=float,
        default=argparse.SUPPRESS,  # absent: the measured figure (no "default: None")
        help=f"requests/s one Fargate task serves (default: {MEASURED['rps_per_vcpu']:g} per "
        f"vCPU, measured by {MEASURED['bench']} on {MEASURED['date']}; x --task-vcpu)",
    )
    fn.add_argument("--task-vcpu", type=float, default=1.0, help="vCPU per Fargate task")
    fn.add_argument("--free-tier", action="store_true", help="subtract the always-free allowances")
    parser.add_argument("--prices", type=Path, help="a prices JSON file (default: the bundled one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="draw cost against request rate"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.requests_per_month is not None:
            if args.requests_per_month < 0:
                raise CostError("requests per month cannot be negative")
            profile = Profile.from_monthly(args.requests_per_month)
        elif args.peak_rpm is not None:
            profile = Profile(args.peak_rpm / 60, args.base_rpm / 60, args.peak_hours)
        else:
            raise CostError(
                "give --requests-per-month or --peak-rpm (with --base-rpm, --peak-hours)"
            )
        function = replace(
            Function(),
            memory_mb=args.memory,
            arch=args.arch,
            p50_ms=args.p50_ms,
            p95_ms=args.p95_ms,
            write_units=args.write_units,
            read_units=args.read_units,
            task_rps=getattr(args, "task_rps", None),
            task_vcpu=args.task_vcpu,
            free_tier=args.free_tier,
        )
        prices = load_prices(args.prices)
        result = report(profile, function, prices)
        print(json.dumps(for_json(result), indent=2) if args.json else render(result))
        if args.plot is not None:
            from orders_aws.cost_plot import plot  # matplotlib only when asked for

            plot(args.plot, function, prices, result)
            print(f"plot written to {args.plot}")
    except CostError as exc:
        print(f"orders-cost: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
