"""The line items of an ``orders-cost`` bill, priced as AWS charges them.

One model for every figure the project quotes (docs/decisions/0017-one-cost-model.md): the
deploy README's table of one million creates is this module's output, and a test holds the
two together. What a create costs, line by line:

* the HTTP API request, in the page's volume tiers (``http_api``);
* the HTTP function: its request and its billed duration, or provisioned concurrency;
* the table's write request units (the caller says how many: ``--write-units``);
* the stream relay, a Lambda invocation per batch of records (``relay``);
* one EventBridge custom event per change;
* X-Ray traces, because the stack's functions trace actively: the first request each second
  and a fraction of the rest are recorded (``traced``), which makes low, even traffic cost
  far more per request in traces than a busy API does;
* SQS only for a consumer's queue (``--sqs-per-event``): ``POST /orders`` sends no message.

Free allowances are never folded into a price: they are separate, negative lines named for
their kind (always free, or the 12-month offer that only some accounts have), and only when
asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Protocol

SECONDS_PER_MONTH: Final = 730 * 3600
ALWAYS_FREE: Final = "free tier (always free)"
TWELVE_MONTHS: Final = "free tier (12 months)"


class Priced(Protocol):
    """What the line items read of ``orders_aws.cost.Function``."""

    @property
    def arch(self) -> str: ...

    @property
    def events_per_request(self) -> float: ...

    @property
    def sqs_requests_per_event(self) -> float: ...

    @property
    def write_units(self) -> float: ...

    @property
    def read_units(self) -> float: ...

    @property
    def relay_batch(self) -> float: ...

    @property
    def relay_ms(self) -> float: ...

    @property
    def traced(self) -> bool: ...

    @property
    def free_tier(self) -> bool: ...

    @property
    def free_tier_12_months(self) -> bool: ...

    @property
    def gb(self) -> float: ...

    def mean_billed_seconds(self) -> float: ...


@dataclass
class Usage:
    """Quantities a free allowance can cover, summed over the lines of one option."""

    api_requests: float = 0.0
    lambda_requests: float = 0.0
    lambda_gb_seconds: float = 0.0  # on-demand duration only: provisioned is not covered
    traces: float = 0.0
    sqs_requests: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.api_requests + other.api_requests,
            self.lambda_requests + other.lambda_requests,
            self.lambda_gb_seconds + other.lambda_gb_seconds,
            self.traces + other.traces,
            self.sqs_requests + other.sqs_requests,
        )


def per_million(count: float, price: float) -> float:
    return max(0.0, count) / 1e6 * price


def http_api(requests: float, prices: dict[str, Any]) -> float:
    """HTTP API requests in the page's two volume tiers (per account and Region, a month)."""
    api = prices["http_api"]
    first = min(requests, api["tier_requests"])
    return per_million(first, api["request_per_million"]) + per_million(
        requests - first, api["request_per_million_over_tier"]
    )


def segments(peak_rps: float, base_rps: float, peak_hours: float) -> list[tuple[float, float]]:
    """A month as (seconds, request rate) pieces: the peak hours a day, and the rest."""
    peak_s = SECONDS_PER_MONTH * peak_hours / 24
    return [(peak_s, peak_rps), (SECONDS_PER_MONTH - peak_s, base_rps)]


def traces(pieces: list[tuple[float, float]], prices: dict[str, Any]) -> float:
    """Traces recorded under the default sampling rule: the first request of every second
    that has one, and a fixed fraction of the others."""
    xray = prices["xray"]
    reservoir: float = xray["sampled_per_second"]
    fraction: float = xray["sampled_fraction"]
    return sum(
        seconds * (min(rate, reservoir) + fraction * max(0.0, rate - reservoir))
        for seconds, rate in pieces
    )


def lambda_front(
    pieces: list[tuple[float, float]],
    fn: Priced,
    prices: dict[str, Any],
    *,
    provisioned_instances: int = 0,
) -> tuple[dict[str, float], Usage]:
    """The HTTP API and the HTTP function: on demand, or on ``provisioned_instances``."""
    lam = prices["lambda"]
    requests = sum(seconds * rate for seconds, rate in pieces)
    gb_seconds = requests * fn.mean_billed_seconds() * fn.gb
    recorded = traces(pieces, prices) if fn.traced else 0.0
    parts = {
        "lambda requests": per_million(requests, lam["request_per_million"]),
        "http api": http_api(requests, prices),
        "x-ray": per_million(recorded, prices["xray"]["trace_recorded_per_million"]),
    }
    if provisioned_instances:
        parts["provisioned concurrency"] = (
            provisioned_instances
            * fn.gb
            * SECONDS_PER_MONTH
            * lam["provisioned_gb_second"][fn.arch]
        )
        parts["lambda compute"] = gb_seconds * lam["provisioned_duration_gb_second"][fn.arch]
        gb_seconds = 0.0
    else:
        parts["lambda compute"] = gb_seconds * lam["gb_second"][fn.arch]
    return parts, Usage(requests, requests, gb_seconds, recorded)


def shared(
    requests: float, fn: Priced, prices: dict[str, Any], front: Usage | None = None
) -> dict[str, float]:
    """What every option pays (the table, the relay, the bus, a consumer's queue), then the
    free allowances asked for over these lines and ``front``'s."""
    lam = prices["lambda"]
    events = requests * fn.events_per_request
    invocations = events / fn.relay_batch if events else 0.0
    relay_gb_seconds = invocations * math.ceil(fn.relay_ms) / 1000 * fn.gb
    relay_traces = (
        traces([(SECONDS_PER_MONTH, invocations / SECONDS_PER_MONTH)], prices) if fn.traced else 0.0
    )
    sqs_requests = events * fn.sqs_requests_per_event
    parts = {
        "dynamodb": per_million(
            requests * fn.write_units, prices["dynamodb"]["write_request_unit_per_million"]
        )
        + per_million(
            requests * fn.read_units, prices["dynamodb"]["read_request_unit_per_million"]
        ),
        "eventbridge": per_million(events, prices["eventbridge"]["custom_event_per_million"]),
        "relay lambda": per_million(invocations, lam["request_per_million"])
        + relay_gb_seconds * lam["gb_second"][fn.arch],
        "relay x-ray": per_million(relay_traces, prices["xray"]["trace_recorded_per_million"]),
        "sqs": per_million(sqs_requests, prices["sqs"]["request_per_million"]),
    }
    usage = Usage(0.0, invocations, relay_gb_seconds, relay_traces, sqs_requests)
    return {**parts, **free_tier(usage + (front or Usage()), fn, prices)}


def free_tier(usage: Usage, fn: Priced, prices: dict[str, Any]) -> dict[str, float]:
    """The allowances asked for, as negative lines: never more than the usage they cover."""
    lines: dict[str, float] = {}
    if fn.free_tier:
        lam, sqs, xray = prices["lambda"], prices["sqs"], prices["xray"]
        lines[ALWAYS_FREE] = -(
            per_million(
                min(usage.lambda_requests, lam["free_tier"]["requests"]),
                lam["request_per_million"],
            )
            + min(usage.lambda_gb_seconds, lam["free_tier"]["gb_seconds"])
            * lam["gb_second"][fn.arch]
            + per_million(
                min(usage.sqs_requests, sqs["free_tier"]["requests"]), sqs["request_per_million"]
            )
            + per_million(
                min(usage.traces, xray["free_tier"]["traces"]), xray["trace_recorded_per_million"]
            )
        )
    if fn.free_tier_12_months and usage.api_requests:
        free = min(usage.api_requests, prices["http_api"]["free_tier"]["requests"])
        lines[TWELVE_MONTHS] = -(
            http_api(usage.api_requests, prices) - http_api(usage.api_requests - free, prices)
        )
    return lines
