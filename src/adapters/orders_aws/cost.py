"""``orders-cost``: what a traffic profile costs per month, three ways, before you deploy.

    orders-cost --requests-per-month 50000000
    orders-cost --peak-rpm 10000 --base-rpm 0 --peak-hours 2      # bursty
    orders-cost --peak-rpm 60000 --base-rpm 50000                   # sustained
    orders-cost ... --memory 1024 --arch x86_64 --p50-ms 15 --p95-ms 45 --plot cost.png

Options compared, each with DynamoDB on demand, the stream relay and EventBridge for the
event path (line items as AWS charges them: :mod:`orders_aws.lines`):

1. **on demand**: Lambda + HTTP API, paying per request and per GB-second;
2. **provisioned**: the same with provisioned concurrency sized for the peak
   (Little's law: peak rate x p95 duration x headroom);
3. **container**: Fargate tasks running ``orders-local serve --store dynamodb`` behind an
   ALB, sized for the peak (at least two for availability) at what one worker served per
   vCPU in ``bench/container.py`` (``container_defaults`` in the prices file says which run)
   times ``--task-vcpu``, or at ``--task-rps``.

It names the cheapest and the break-even sustained request rate between on demand and each
alternative, and warns about every default quota the profile would pass
(:mod:`orders_aws.limits`). Prices come from ``prices.json`` (each with its page and date),
overridable with ``--prices``; nothing is fetched. Durations default to the measured warm
invocation plus a stated DynamoDB round trip (``lambda_defaults`` in that file); measure
yours and pass them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from orders_aws import cli_numbers, limits, lines
from orders_aws.cost_output import for_json, render
from orders_aws.prices import CostError, lambda_durations, load_prices

SECONDS_PER_MONTH: Final = 730 * 3600  # AWS bills a month as 730 hours
HOURS_PER_MONTH: Final = 730
_BUNDLED: Final = load_prices()
DEFAULT_P50_MS, DEFAULT_P95_MS = lambda_durations(_BUNDLED, 512)
"""At 512 MB; ``main`` recomputes them for ``--memory`` (see ``lambda_durations``)."""
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


TASK_VCPU: Final = 0.5
TASK_GB: Final = 1.0
"""The task size deploy/aws's Fargate service gets without ``containerCpu`` and
``containerMemory`` (512 CPU units, 1,024 MiB): what is priced is what is deployed."""


@dataclass(frozen=True)
class Function:
    memory_mb: int = 512
    arch: str = "arm64"
    p50_ms: float = DEFAULT_P50_MS
    p95_ms: float = DEFAULT_P95_MS
    write_units: float = 1.0
    read_units: float = 0.0
    events_per_request: float = 1.0
    sqs_requests_per_event: float = 0.0  # a consumer's queue: 3 (send, receive, delete)
    relay_batch: float = _BUNDLED["lambda_defaults"]["relay_records_per_invocation"]
    relay_ms: float = _BUNDLED["lambda_defaults"]["relay_ms_per_invocation"]
    traced: bool = True
    free_tier_12_months: bool = False
    headroom: float = 1.2
    task_vcpu: float = TASK_VCPU
    task_gb: float = TASK_GB
    task_rps: float = _BUNDLED["container_defaults"]["rps_per_vcpu"] * TASK_VCPU
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
        if self.relay_batch < 1 or self.relay_ms <= 0:
            raise CostError("a relay invocation carries at least one record and takes time")
        if self.task_rps <= 0 or self.task_vcpu <= 0 or self.task_gb <= 0 or self.min_tasks < 1:
            raise CostError(
                "a task must have vCPU and memory and serve requests, and one task must run"
            )

    @property
    def gb(self) -> float:
        return self.memory_mb / 1024

    def mean_billed_seconds(self) -> float:
        """Billed duration, whole milliseconds: most requests at p50, one in twenty at p95."""
        return (0.95 * math.ceil(self.p50_ms) + 0.05 * math.ceil(self.p95_ms)) / 1000


def shared(
    requests: float, fn: Function, prices: dict[str, Any], front: lines.Usage | None = None
) -> dict[str, float]:
    """What every option pays: the table and the event path (and the free tier asked for)."""
    return lines.shared(requests, fn, prices, front)


def on_demand(profile: Profile, fn: Function, prices: dict[str, Any]) -> dict[str, float]:
    pieces = lines.segments(profile.peak_rps, profile.base_rps, profile.peak_hours)
    parts, usage = lines.lambda_front(pieces, fn, prices)
    return {**parts, **shared(profile.requests_per_month(), fn, prices, usage)}


def provisioned_concurrency(profile: Profile, fn: Function) -> int:
    """Instances to keep warm for the peak (Little's law, p95 duration, with headroom)."""
    return max(1, math.ceil(profile.peak_rps * fn.p95_ms / 1000 * fn.headroom))


def provisioned(profile: Profile, fn: Function, prices: dict[str, Any]) -> dict[str, float]:
    pieces = lines.segments(profile.peak_rps, profile.base_rps, profile.peak_hours)
    instances = provisioned_concurrency(profile, fn)
    parts, usage = lines.lambda_front(pieces, fn, prices, provisioned_instances=instances)
    return {**parts, **shared(profile.requests_per_month(), fn, prices, usage)}


def container_tasks(profile: Profile, fn: Function) -> int:
    return max(fn.min_tasks, math.ceil(profile.peak_rps * fn.headroom / fn.task_rps))


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


def report(
    profile: Profile,
    fn: Function,
    prices: dict[str, Any],
    options: limits.Options | None = None,
) -> dict[str, Any]:
    profile.check()
    fn.check()
    options = options or limits.Options(region=str(prices.get("region", "us-east-1")))
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
        "container_task_rps": fn.task_rps,
        "prices": {"region": prices.get("region"), "read_on": prices.get("read_on")},
        "region": options.region,
        "warnings": limits.check(profile, fn, options),
    }


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
    fn.add_argument(
        "--p50-ms", type=float, help="None: the measured warm call + a DynamoDB round trip"
    )
    fn.add_argument("--p95-ms", type=float, help="None: as --p50-ms, at the tail")
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
        help="requests/s one Fargate task serves; None: prices.json's container_defaults "
        "(per vCPU, measured by bench/container.py) x --task-vcpu",
    )
    fn.add_argument(
        "--task-vcpu",
        type=float,
        default=TASK_VCPU,
        help="vCPU per Fargate task (default: what deploy/aws deploys)",
    )
    fn.add_argument(
        "--task-gb",
        type=float,
        default=TASK_GB,
        help="memory per Fargate task, GB (default: what deploy/aws deploys)",
    )
    fn.add_argument("--free-tier", action="store_true", help="subtract the always-free allowances")
    parser.add_argument("--prices", type=Path, help="a prices JSON file (default: the bundled one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="draw cost against request rate"
    )
    _model_arguments(parser)
    limits.add_arguments(parser)
    cli_numbers.harden(parser)
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("the rest of the bill (orders_aws.lines)")
    model.add_argument(
        "--free-tier-12-months",
        action="store_true",
        help="also subtract the 12-month offers (HTTP API), which only accounts opened "
        "before 2025-07-15 have, in their first year",
    )
    model.add_argument(
        "--sqs-per-event", type=float, default=0.0, help="a consumer queue's requests per event"
    )
    model.add_argument(
        "--relay-batch", type=float, help="records per relay invocation; None: prices.json"
    )
    model.add_argument(
        "--relay-ms", type=float, help="billed ms per relay invocation; None: prices.json"
    )
    model.add_argument("--no-tracing", action="store_true", help="price without X-Ray")


def draw(
    path: Path,
    fn: Function,
    prices: dict[str, Any],
    result: dict[str, Any],
    options: limits.Options | None = None,
) -> dict[str, float]:
    """``--plot``: the three options' monthly cost against a sustained rate, the report's
    break-evens, and the rate at which each default quota is passed (returned)."""
    from orders_aws.cost_plot import plot

    def curve(name: str) -> Callable[[float], float]:
        return lambda rps: monthly(name, Profile.flat(rps), fn, prices)

    quotas = limits.thresholds(Profile.flat, fn, options or limits.Options())
    title = (
        f"orders-core monthly cost ({fn.arch}, {fn.memory_mb} MB, "
        f"p50 {fn.p50_ms:.1f} ms; prices {result['prices']['read_on']})"
    )
    return plot(path, {name: curve(name) for name in OPTIONS}, result, quotas, title)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (2) or --help (0), as the return code
        return int(exc.code or 0)
    try:
        return _run(args)
    except BrokenPipeError:  # `orders-cost | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a process killed by SIGPIPE reports


def _run(args: argparse.Namespace) -> int:
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
        prices = load_prices(args.prices)
        p50, p95 = lambda_durations(prices, max(args.memory, 1))
        defaults = prices["lambda_defaults"]
        function = replace(
            Function(),
            memory_mb=args.memory,
            arch=args.arch,
            p50_ms=p50 if args.p50_ms is None else args.p50_ms,
            p95_ms=p95 if args.p95_ms is None else args.p95_ms,
            write_units=args.write_units,
            read_units=args.read_units,
            task_rps=(
                prices["container_defaults"]["rps_per_vcpu"] * args.task_vcpu
                if args.task_rps is None
                else args.task_rps
            ),
            task_vcpu=args.task_vcpu,
            task_gb=args.task_gb,
            free_tier=args.free_tier,
            free_tier_12_months=args.free_tier_12_months,
            sqs_requests_per_event=args.sqs_per_event,
            relay_batch=(
                defaults["relay_records_per_invocation"]
                if args.relay_batch is None
                else args.relay_batch
            ),
            relay_ms=defaults["relay_ms_per_invocation"]
            if args.relay_ms is None
            else args.relay_ms,
            traced=not args.no_tracing,
        )
        options = limits.options_from(args, str(prices.get("region", "us-east-1")))
        result = report(profile, function, prices, options)
        print(json.dumps(for_json(result), indent=2) if args.json else render(result))
        sys.stdout.flush()  # a closed pipe raises here, inside the handler, not at exit
        if args.plot is not None:
            draw(args.plot, function, prices, result, options)
            print(f"plot written to {args.plot}")
    except CostError as exc:
        print(f"orders-cost: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
