"""orders-cost as a newcomer meets it: a partial or wrong prices file is a clear error (exit
2, never a traceback), and ``--json`` prints money in cents, not float noise."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from orders_aws.cost import load_prices, main

BUNDLED = load_prices()


def _write(tmp_path: Path, prices: dict[str, Any]) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(prices))
    return path


@pytest.mark.parametrize(
    "missing",
    [("lambda", "gb_second", "arm64"), ("sqs",), ("fargate", "vcpu_hour"), ("alb", "hour")],
)
def test_a_missing_price_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: tuple[str, ...]
) -> None:
    prices = copy.deepcopy(BUNDLED)
    node = prices
    for key in missing[:-1]:
        node = node[key]
    del node[missing[-1]]
    assert main(["--peak-rpm", "100", "--prices", str(_write(tmp_path, prices))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orders-cost: error: ")
    assert ".".join(missing) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0.2", None, [], {"x": 1}, True, -1])
def test_a_price_that_is_not_a_number_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object
) -> None:
    prices = copy.deepcopy(BUNDLED)
    prices["lambda"]["request_per_million"] = value
    assert main(["--peak-rpm", "100", "--prices", str(_write(tmp_path, prices))]) == 2
    assert "lambda.request_per_million" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["[]", '"prices"', "{"])
def test_a_prices_file_that_is_not_an_object_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    assert main(["--peak-rpm", "100", "--prices", str(path)]) == 2
    assert "prices file" in capsys.readouterr().err


def test_a_full_copy_of_the_bundled_prices_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--peak-rpm", "100", "--prices", str(_write(tmp_path, BUNDLED))]) == 0
    assert "cheapest:" in capsys.readouterr().out


def _floats(value: Any, path: str = "") -> list[tuple[str, float]]:
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _floats(v, f"{path}/{k}")]
    if isinstance(value, float):
        return [(path, value)]
    return []


@pytest.mark.parametrize(
    "argv",
    [
        ["--requests-per-month", "1000000"],  # 999999.9999999998 requests, before
        ["--peak-rpm", "60000", "--base-rpm", "50000"],
        ["--peak-rpm", "10000", "--peak-hours", "2", "--free-tier"],
    ],
)
def test_json_money_is_in_cents_and_counts_are_whole(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["requests_per_month"], int)
    for path, number in _floats(result):
        decimals = 2 if path.startswith(("/costs", "/totals")) else 3
        assert round(number, decimals) == number, (path, number)
    if argv[1] == "1000000":
        assert result["requests_per_month"] == 1_000_000
        # the deploy README's figure (tests/aws/test_cost_readme.py holds the two together)
        assert result["totals"]["on demand"] == 8.46
