"""The default quotas a traffic profile would pass, checked before anything is deployed.

``orders-cost`` prices a profile; this says which limit it meets first and what to do about
it: raise the quota in Service Quotas, or, for the limits AWS does not raise (a DynamoDB
partition, Lambda's scaling rate), change the design. The quotas and their pages are in
``limits.json``; what each means for this table and these functions is docs/scaling.md.

Rates are checked at the *spike*: the profile's peak times ``--burst``, because quotas
throttle per second, not per month.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Final, Protocol

from orders_aws.cli_numbers import fraction, non_negative
from orders_aws.prices import CostError

REGION: Final = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]", re.ASCII)
RAISABLE: Final = (
    "api_rps",
    "api_burst",
    "stage_rps",
    "lambda_concurrency",
    "putevents_tps",
    "table_read_units",
    "table_write_units",
)
"""``--quota`` names: the quotas an account can have raised (partition limits are not)."""


class Rates(Protocol):
    """What the checks read of ``orders_aws.cost.Profile``."""

    @property
    def peak_rps(self) -> float: ...

    @property
    def base_rps(self) -> float: ...


class Sized(Protocol):
    """What the checks read of ``orders_aws.cost.Function``."""

    @property
    def p95_ms(self) -> float: ...

    @property
    def write_units(self) -> float: ...

    @property
    def read_units(self) -> float: ...

    @property
    def events_per_request(self) -> float: ...


@dataclass(frozen=True)
class Options:
    region: str = "us-east-1"
    burst: float = 1.0
    hot_customer_share: float = 0.0
    hot_order_rps: float = 0.0
    quotas: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QuotaWarning:
    """A default quota the profile passes: which, by how much, and what to do."""

    quota: str
    needed: float
    limit: float | None  # None: the default for this Region is not recorded
    unit: str
    adjustable: bool
    fix: str
    source: str


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        resources.files("orders_aws").joinpath("limits.json").read_text()
    )
    return data


def check(profile: Rates, fn: Sized, options: Options) -> list[QuotaWarning]:
    """Every default quota ``profile`` would pass with ``fn``, in the order a request meets
    them: the API, the function, the bus, the table."""
    q = load()
    quotas = options.quotas
    spike = profile.peak_rps * options.burst
    found: list[QuotaWarning] = []

    def over(quota: str, needed: float, limit: float, unit: str, *rest: Any) -> None:
        if needed > limit:
            found.append(QuotaWarning(quota, needed, limit, unit, *rest))

    api = q["api_gateway"]
    defaults = api["low_default"] if options.region in api["low_default"]["regions"] else api
    rps = quotas.get("api_rps", defaults["rps"])
    burst = quotas.get("api_burst", defaults["burst"])
    over(
        "API Gateway throttle rate, per account and Region",
        profile.peak_rps,
        rps,
        "requests/s",
        True,
        api["raise"],
        api["source"],
    )
    if spike > rps >= profile.peak_rps:
        lasts = burst / (spike - rps)
        over(
            f"API Gateway burst (token bucket; a {options.burst:g}x spike drains it in "
            f"{lasts:,.1f} s)",
            spike,
            rps,
            "requests/s",
            False,
            api["burst_raise"],
            api["source"],
        )
    stage = q["stage_throttle"]
    over(
        "the stack's default stage throttle (throttleRate)",
        profile.peak_rps,
        quotas.get("stage_rps", stage["rps"]),
        "requests/s",
        True,
        stage["raise"],
        stage["source"],
    )

    lam = q["lambda"]
    seconds = fn.p95_ms / 1000
    needed = math.ceil(spike * seconds)
    over(
        "Lambda concurrent executions, per account and Region (spike x p95 duration)",
        needed,
        quotas.get("lambda_concurrency", lam["concurrency"]),
        "executions",
        True,
        lam["concurrency_raise"],
        lam["concurrency_source"],
    )
    step = needed - math.ceil(profile.base_rps * seconds)
    windows = math.ceil(step / lam["scaling_environments"])
    over(
        f"Lambda scaling rate: the last of {step:,} new environments (base to spike) comes "
        f"~{(windows - 1) * lam['scaling_seconds']} s after the step; until then requests "
        "beyond the environments in place get 429",
        step,
        lam["scaling_environments"],
        f"environments per {lam['scaling_seconds']} s",
        False,
        lam["scaling_fix"],
        lam["scaling_source"],
    )

    eb = q["eventbridge"]
    events = spike * fn.events_per_request
    tps = quotas.get("putevents_tps", eb["putevents_tps"].get(options.region))
    if tps is None and events > 0:
        found.append(
            QuotaWarning(
                f"EventBridge PutEvents in {options.region}: the default for this Region is not "
                "recorded here (some Regions are far below us-east-1's); pass "
                "--quota putevents_tps=N from Service Quotas",
                events,
                None,
                "events/s",
                True,
                eb["raise"],
                eb["source"],
            )
        )
    elif tps is not None:
        over(
            f"EventBridge PutEvents, per account and Region ({options.region}), counted per "
            f"event (the relay sends up to {eb['entries_per_call']} per call)",
            events,
            tps,
            "events/s",
            True,
            eb["raise"],
            eb["source"],
        )

    ddb = q["dynamodb"]
    over(
        "DynamoDB table write throughput, on demand (table and index writes)",
        spike * fn.write_units,
        quotas.get("table_write_units", ddb["table_write_units"]),
        "write units/s",
        True,
        ddb["table_raise"],
        ddb["table_source"],
    )
    over(
        "DynamoDB table read throughput, on demand",
        spike * fn.read_units,
        quotas.get("table_read_units", ddb["table_read_units"]),
        "read units/s",
        True,
        ddb["table_raise"],
        ddb["table_source"],
    )
    hot = spike * options.hot_customer_share
    over(
        "DynamoDB partition writes on the customer index (gsi1pk = CUSTOMER#id): one index "
        "entry of 1 write unit per order write of the hottest customer",
        hot,
        ddb["partition_write_units"],
        "write units/s",
        False,
        f"{ddb['partition_raise']}. Design fix: shard that customer's index key "
        "(CUSTOMER#id#0..N-1, listing reads the N shards and merges by created time), "
        "or keep very large accounts' orders off the index",
        ddb["partition_source"],
    )
    over(
        "DynamoDB partition writes on one order (pk = ORDER#id): an update per command",
        options.hot_order_rps,
        ddb["partition_write_units"],
        "write units/s",
        False,
        f"{ddb['partition_raise']}. Design fix: an order is one aggregate written under "
        "optimistic concurrency, so commands on it serialize long before this: queue them "
        "per order (SQS FIFO, MessageGroupId = order id) or split the aggregate",
        ddb["partition_source"],
    )
    over(
        "DynamoDB partition reads on one order (a strongly consistent read per command)",
        options.hot_order_rps,
        ddb["partition_read_units"],
        "read units/s",
        False,
        ddb["partition_raise"],
        ddb["partition_source"],
    )
    return found


def thresholds(
    flat: Callable[[float], Rates], fn: Sized, options: Options, *, ceiling: float = 1e7
) -> dict[str, float]:
    """Per quota, the sustained request rate at which :func:`check` first warns about it
    (for ``--plot``'s quota lines). ``flat(rps)`` builds a steady profile. Found by bisection
    on the checks themselves, so a line can never disagree with a warning."""

    def quotas_at(rps: float) -> set[str]:
        return {w.quota.split(":")[0].split(" (")[0] for w in check(flat(rps), fn, options)}

    found: dict[str, float] = {}
    for quota in quotas_at(ceiling) - quotas_at(0.0):
        low, high = 0.0, ceiling
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (low, middle) if quota in quotas_at(middle) else (middle, high)
        found[quota] = high
    return dict(sorted(found.items(), key=lambda item: item[1]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits (default quotas; docs/scaling.md)")
    group.add_argument(
        "--region", help="AWS Region for Region-dependent quotas; None: the prices file's"
    )
    group.add_argument(
        "--burst",
        type=non_negative,
        default=1.0,
        help="spike factor over the peak, for a few seconds (3 for 3x)",
    )
    group.add_argument(
        "--hot-customer-share",
        type=fraction,
        default=0.0,
        help="share of requests from the largest customer (0 to 1)",
    )
    group.add_argument(
        "--hot-order-rps",
        type=non_negative,
        default=0.0,
        help="commands per second on the busiest single order",
    )
    group.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="NAME=N",
        help=f"a quota raised for your account: {', '.join(RAISABLE)}",
    )


def options_from(args: argparse.Namespace, default_region: str) -> Options:
    region = args.region or default_region
    if REGION.fullmatch(region) is None:
        raise CostError(f"--region {region!r} is not a Region code such as us-east-1")
    if args.burst < 1:
        raise CostError("--burst is a factor over the peak: 1 or more")
    return Options(
        region, args.burst, args.hot_customer_share, args.hot_order_rps, parse_quotas(args.quota)
    )


def parse_quotas(items: Sequence[str]) -> dict[str, float]:
    quotas: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in RAISABLE:
            raise CostError(
                f"--quota {item!r}: unknown quota {name!r}; one of {', '.join(RAISABLE)} "
                "(DynamoDB partition limits and Lambda's scaling rate cannot be raised)"
            )
        try:
            quotas[name] = non_negative(value)
        except argparse.ArgumentTypeError as exc:
            raise CostError(f"--quota {item!r}: {exc}") from None
    return quotas


def for_json(warnings: Sequence[QuotaWarning]) -> list[dict[str, Any]]:
    return [
        {**asdict(w), "needed": round(w.needed, 3)}  # float noise, as for the money
        for w in warnings
    ]


def render(warnings: Sequence[QuotaWarning], region: str) -> str:
    if not warnings:
        return f"limits: within every default quota checked ({region}; docs/scaling.md)"
    lines = [f"limits: {len(warnings)} default quota(s) passed ({region}; docs/scaling.md)"]
    for w in warnings:
        limit = "not recorded" if w.limit is None else f"{w.limit:,.0f} by default"
        lines.append(f"  ! {w.quota}: {w.needed:,.0f} {w.unit} needed, {limit}")
        lines.append(f"    {'raise: ' if w.adjustable else ''}{w.fix}")
        lines.append(f"    {w.source}")
    return "\n".join(lines)
