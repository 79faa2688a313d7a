"""orders-cost's quota warnings: each one silent at its default and raised just past it, the
Region-dependent ones per Region, raised quotas honoured, and ``--json`` carrying them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orders_aws.cost import Function, Profile, main
from orders_aws.limits import Options, QuotaWarning, check, thresholds

FN = Function(p50_ms=50, p95_ms=100)  # 100 ms at p95: 10 req/s per execution


def quotas(profile: Profile, fn: Function = FN, **options: object) -> dict[str, QuotaWarning]:
    found = check(profile, fn, Options(**options))  # type: ignore[arg-type]
    return {w.quota.split(":")[0].split(" (")[0]: w for w in found}


API = "API Gateway throttle rate, per account and Region"
BURST = "API Gateway burst"
STAGE = "the stack's default stage throttle"
CONCURRENCY = "Lambda concurrent executions, per account and Region"
SCALING = "Lambda scaling rate"
PUTEVENTS = "EventBridge PutEvents, per account and Region"
TABLE_WRITES = "DynamoDB table write throughput, on demand"
TABLE_READS = "DynamoDB table read throughput, on demand"
HOT_CUSTOMER = "DynamoDB partition writes on the customer index"
HOT_ORDER_WRITES = "DynamoDB partition writes on one order"
HOT_ORDER_READS = "DynamoDB partition reads on one order"


@pytest.mark.parametrize(
    ("quota", "at", "past", "options"),
    [
        (API, Profile.flat(10_000), Profile.flat(10_000.5), {}),
        (API, Profile.flat(2_500), Profile.flat(2_500.5), {"region": "eu-south-1"}),
        (STAGE, Profile.flat(100), Profile.flat(100.5), {}),
        (CONCURRENCY, Profile.flat(10_000), Profile.flat(10_010), {}),
        (SCALING, Profile(10_000, 0), Profile(10_010, 0), {}),
        (PUTEVENTS, Profile.flat(10_000), Profile.flat(10_000.5), {}),
        (PUTEVENTS, Profile.flat(2_400), Profile.flat(2_400.5), {"region": "us-east-2"}),
    ],
)
def test_a_quota_is_silent_at_its_default_and_warns_just_past_it(
    quota: str, at: Profile, past: Profile, options: dict[str, object]
) -> None:
    assert quota not in quotas(at, **options)
    warning = quotas(past, **options)[quota]
    assert warning.needed > warning.limit  # type: ignore[operator]
    assert warning.source.startswith(("https://docs.aws.amazon.com/", "deploy/aws/"))
    assert warning.fix
    assert warning.adjustable is (quota != SCALING)  # the scaling rate is not a quota


def test_the_burst_warns_when_a_spike_passes_the_rate_the_peak_does_not() -> None:
    assert BURST not in quotas(Profile.flat(5_000), burst=2.0)  # exactly 10,000 a second
    warning = quotas(Profile.flat(5_000), burst=2.5)[BURST]
    assert warning.needed == 12_500
    assert "drains it in 2.0 s" in warning.quota  # 5,000 tokens at 2,500 a second over
    assert not warning.adjustable
    assert "cannot be requested" in warning.fix


def test_the_table_and_its_partitions_at_their_limits() -> None:
    four = Function(p50_ms=50, p95_ms=100, write_units=4, read_units=4)
    assert not {TABLE_WRITES, TABLE_READS} & set(quotas(Profile.flat(10_000), four))
    assert {TABLE_WRITES, TABLE_READS} <= set(quotas(Profile.flat(10_000.5), four))
    assert HOT_CUSTOMER not in quotas(Profile.flat(10_000), hot_customer_share=0.1)
    hot = quotas(Profile.flat(10_000), hot_customer_share=0.1001)[HOT_CUSTOMER]
    assert not hot.adjustable
    assert "shard that customer's index key" in hot.fix
    assert HOT_ORDER_WRITES not in quotas(Profile.flat(1), hot_order_rps=1_000)
    assert HOT_ORDER_WRITES in quotas(Profile.flat(1), hot_order_rps=1_001)
    assert HOT_ORDER_READS not in quotas(Profile.flat(1), hot_order_rps=3_000)
    assert HOT_ORDER_READS in quotas(Profile.flat(1), hot_order_rps=3_001)


def test_a_region_without_a_recorded_putevents_default_says_so() -> None:
    warning = quotas(Profile.flat(1), region="eu-west-1")["EventBridge PutEvents in eu-west-1"]
    assert warning.limit is None
    assert "--quota putevents_tps=N" in warning.quota
    assert "EventBridge PutEvents in eu-west-1" not in quotas(
        Profile.flat(1), region="eu-west-1", quotas={"putevents_tps": 5_000}
    )


def test_raised_quotas_are_honoured() -> None:
    raised = {"api_rps": 30_000, "stage_rps": 30_000, "lambda_concurrency": 5_000}
    found = quotas(Profile.flat(20_000), quotas=raised)
    assert not {API, STAGE, CONCURRENCY} & set(found)
    assert PUTEVENTS in found  # not raised


def test_a_20000_rps_profile_warns_about_api_gateway(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--peak-rpm", "1200000"]) == 0
    out = capsys.readouterr().out
    assert f"! {API}: 20,000 requests/s needed, 10,000 by default" in out
    assert "L-8A5B8E43" in out


def test_a_profile_within_every_default_warns_of_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--peak-rpm", "3000", "--burst", "3"]) == 0  # 50 a second, spikes of 150
    assert "limits: within every default quota checked (us-east-1" in capsys.readouterr().out
    assert main(["--peak-rpm", "5000", "--burst", "1.2", "--json"]) == 0  # 100 a second
    assert json.loads(capsys.readouterr().out)["warnings"] == []


def test_json_carries_the_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--peak-rpm", "1200000", "--burst", "3", "--region", "us-east-2", "--json"]
    assert main([*argv, "--hot-customer-share", "0.05"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["region"] == "us-east-2"
    by_quota = {w["quota"].split(" (")[0]: w for w in result["warnings"]}
    assert set(next(iter(by_quota.values()))) == {
        "quota",
        "needed",
        "limit",
        "unit",
        "adjustable",
        "fix",
        "source",
    }
    assert by_quota[PUTEVENTS] | {"fix": ""} == {
        "quota": by_quota[PUTEVENTS]["quota"],
        "needed": 60_000,
        "limit": 2_400,
        "unit": "events/s",
        "adjustable": True,
        "fix": "",
        "source": "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html",
    }
    assert by_quota[HOT_CUSTOMER]["adjustable"] is False
    assert by_quota[HOT_CUSTOMER]["needed"] == 3_000


def test_the_plot_lines_sit_where_the_warnings_start() -> None:
    lines = thresholds(Profile.flat, FN, Options())
    assert lines[STAGE] == pytest.approx(100, rel=1e-6)
    assert lines[API] == pytest.approx(10_000, rel=1e-6)
    assert list(lines.values()) == sorted(lines.values())
    for quota, rps in lines.items():
        assert quota not in quotas(Profile.flat(rps * 0.999))
        assert quota in quotas(Profile.flat(rps * 1.001))


def test_the_plot_draws_the_first_quota_line(tmp_path: Path) -> None:
    pytest.importorskip(
        "matplotlib", reason="the plot extra is installed by the dynamodb-moto session"
    )
    from orders_aws.cost import draw, report
    from orders_aws.prices import load_prices

    prices = load_prices()
    drawn = draw(tmp_path / "c.png", FN, prices, report(Profile.flat(1), FN, prices))
    assert STAGE in drawn  # the lowest limit is always within the picture
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
