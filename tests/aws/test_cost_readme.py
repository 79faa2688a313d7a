"""The deploy README's cost figures are orders-cost's: the table of one million creates line
for line, the per-million figure at 10,000 requests a second, and the stage throttle's worst
case. They disagreed once ($3.26 in the README, $4.11 from the tool) because each counted
different lines; now the README quotes the tool and this test reads both."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orders_aws.cost import main

README = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "README.md"
SECTION = README.read_text().split("## What it costs", 1)[1].split("\n## ", 1)[0]
ROW = re.compile(r"^\| (\*\*)?([a-z -]+?)(\*\*)? \|.*\| (\*\*)?([0-9.]+)(\*\*)? \|$", re.M)


def tool(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_the_million_creates_table_is_what_the_tool_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = {m.group(2): float(m.group(5)) for m in ROW.finditer(SECTION)}
    result = tool(["--requests-per-month", "1000000"], capsys)
    lines = {name: usd for name, usd in result["costs"]["on demand"].items() if usd}
    assert rows.pop("total") == result["totals"]["on demand"] == 8.46
    assert rows == lines


def test_the_per_million_figure_at_10000_a_second_is_the_tools(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quoted = re.search(
        r"\*\*\$([0-9.]+) per million\*\* \(`orders-cost --peak-rpm 600000`", SECTION
    )
    assert quoted is not None
    result = tool(["--peak-rpm", "600000"], capsys)
    per_million = result["totals"]["on demand"] / (result["requests_per_month"] / 1e6)
    assert float(quoted.group(1)) == round(per_million, 2)


def test_the_stage_throttles_worst_case_is_the_tools(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = README.read_text()
    quoted = re.search(r"\$([0-9.]+) per second \(~\$([0-9]+) a day", text)
    assert quoted is not None
    month = tool(["--peak-rpm", "6000"], capsys)["totals"]["on demand"]  # 100 a second
    assert float(quoted.group(1)) == round(month / (730 * 3600), 4)
    assert int(quoted.group(2)) == round(month / (730 / 24))
