"""orders-cost prices as AWS charges them (tiers, traces, labelled free allowances, durations
from the defaults file) and a command line that refuses what is not a plain number."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from orders_aws import lines
from orders_aws.cost import DEFAULT_P50_MS, DEFAULT_P95_MS, Function, Profile, main, report
from orders_aws.prices import lambda_durations, load_prices

PRICES = load_prices()


@pytest.mark.parametrize(
    ("requests", "usd"),
    [
        (1_000_000, 1.00),
        (300_000_000, 300.00),
        (300_000_001, 300.0000009),
        (1_000_000_000, 930.00),  # 300 M at $1.00 + 700 M at $0.90
        (2_000_000_000, 1830.00),
    ],
)
def test_http_api_requests_are_priced_in_their_tiers(requests: int, usd: float) -> None:
    assert lines.http_api(requests, PRICES) == pytest.approx(usd)


def test_a_billion_requests_through_the_tool_pays_930_for_the_api() -> None:
    result = report(Profile.from_monthly(1_000_000_000), Function(), PRICES)
    assert result["costs"]["on demand"]["http api"] == pytest.approx(930.00)


def test_traces_are_the_first_request_each_second_and_five_percent_of_the_rest() -> None:
    month = lines.SECONDS_PER_MONTH
    assert lines.traces([(month, 0.5)], PRICES) == pytest.approx(0.5 * month)  # all of them
    assert lines.traces([(month, 21)], PRICES) == pytest.approx(2 * month)  # 1 + 5% of 20
    untraced = report(Profile.flat(21), Function(traced=False), PRICES)["costs"]["on demand"]
    assert untraced["x-ray"] == untraced["relay x-ray"] == 0


def test_free_allowances_are_labelled_lines_and_only_when_asked() -> None:
    profile = Profile.from_monthly(500_000)
    plain = report(profile, Function(), PRICES)["costs"]["on demand"]
    assert not [k for k in plain if k.startswith("free tier")]
    both = report(profile, Function(free_tier=True, free_tier_12_months=True), PRICES)["costs"][
        "on demand"
    ]
    assert both["http api"] == pytest.approx(0.50)  # still charged in full...
    assert both["free tier (12 months)"] == pytest.approx(-0.50)  # ...and given back here
    always = both["free tier (always free)"]
    # every Lambda request (500,000 + 50,000 relay), all their GB-s, 100,000 traces
    covered = plain["lambda requests"] + plain["lambda compute"] + plain["relay lambda"] + 0.50
    assert always == pytest.approx(-covered)
    for name in ("on demand", "provisioned", "container"):
        total = report(profile, Function(free_tier=True), PRICES)["totals"][name]
        assert total >= 0


def test_the_12_month_offer_is_named_as_such_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--requests-per-month", "1000000", "--free-tier-12-months"]) == 0
    assert "free tier (12 months) -1.00" in capsys.readouterr().out
    assert "2025-07-15" in PRICES["http_api"]["free_tier"]["who"]


def test_lambda_durations_default_from_the_measured_warm_call_plus_a_round_trip() -> None:
    d = PRICES["lambda_defaults"]
    assert d["read_on"] == "2026-12-02"
    assert "bench/warm.py" in d["source"]
    assert "ASSUMPTION" in d["source"]
    warm = d["warm_invocation_ms"] * d["full_core_memory_mb"] / 512
    assert pytest.approx((warm + 10, warm + 30)) == (DEFAULT_P50_MS, DEFAULT_P95_MS)
    assert lambda_durations(PRICES, 3008) == pytest.approx(  # a full core and more: unscaled
        (d["warm_invocation_ms"] + 10, d["warm_invocation_ms"] + 30)
    )
    assert Function().mean_billed_seconds() == pytest.approx((0.95 * 11 + 0.05 * 31) / 1000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--requests-per-month", "nan"], "is not a number"),
        (["--requests-per-month", "inf"], "is not a number"),
        (["--requests-per-month", "1e6"], "is not a number"),
        (["--requests-per-month", "1_000"], "is not a number"),
        (["--requests-per-month", "\u0661\u0662"], "is not a number"),  # Arabic-Indic 12
        (["--peak-rpm", "\uff11\uff12"], "is not a number"),  # fullwidth 12
        (["--peak-rpm", " 5"], "is not a number"),
        (["--peak-rpm", "-0.5"], "cannot be negative"),
        (["--peak-rpm", "1" + "0" * 16], "larger than this tool models"),
        (["--peak-rpm", "9" * 40], "is not a number"),
        (["--peak-rpm", "10", "--memory", "\uff15\uff11\uff12"], "is not a whole number"),
        (["--peak-rpm", "10", "--task-rps", "nan"], "is not a number"),
        (["--peak-rpm", "10", "--hot-customer-share", "1.5"], "between 0 and 1"),
        (["--peak-rpm", "10", "--burst", "0.5"], "1 or more"),
        (["--peak-rpm", "10", "--region", "US-EAST-1"], "is not a Region code"),
        (["--peak-rpm", "10", "--quota", "partition_write_units=5000"], "cannot be raised"),
        (["--peak-rpm", "10", "--quota", "api_rps=lots"], "is not a number"),
        (["--peak-rpm", "10", "--relay-batch", "0"], "at least one record"),
    ],
)
def test_hostile_numbers_get_a_usage_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_closed_pipe_ends_quietly() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "orders_aws.cost", "--peak-rpm", "1200000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    child.stdout.close()  # `| head` that has read enough, before the first line
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=60) == 141
    assert err == ""


def test_every_number_in_a_report_is_finite() -> None:
    result = report(Profile(1e9, 0, 1), Function(), PRICES)
    assert all(math.isfinite(v) for parts in result["costs"].values() for v in parts.values())
