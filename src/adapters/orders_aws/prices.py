"""The prices ``orders-cost`` reads: the bundled ``prices.json``, or a corrected copy.

A copy must have every price the bundled file has, each a non-negative number: a missing
one used to surface as a KeyError deep in the arithmetic, which told a user nothing.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any


class CostError(ValueError):
    """Bad input: the message says which and why."""


def load_prices(path: Path | None = None) -> dict[str, Any]:
    """The bundled prices, or a file of them that has every price the bundled one has."""
    bundled = resources.files("orders_aws").joinpath("prices.json")
    if path is None:
        text = bundled.read_text()
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise CostError(f"cannot read prices file {path}: {exc.strerror}") from None
    try:
        prices: Any = json.loads(text)
    except ValueError:
        raise CostError(f"prices file {path} is not valid JSON") from None
    if path is not None:
        reason = _missing_price(prices, json.loads(bundled.read_text()))
        if reason is not None:
            raise CostError(f"prices file {path}: {reason} (start from a copy of {bundled})")
    result: dict[str, Any] = prices
    return result


def _missing_price(prices: Any, shape: dict[str, Any], at: str = "") -> str | None:
    """Why ``prices`` lacks a number the bundled file (``shape``) has, or None: a KeyError
    deep in the arithmetic told a user nothing."""
    if not isinstance(prices, dict):
        return f"{at or 'the file'} must be a JSON object"
    for key, expected in shape.items():
        name = f"{at}.{key}" if at else key
        if isinstance(expected, dict):
            if key not in prices:
                return f"{name} is missing"
            if (reason := _missing_price(prices[key], expected, name)) is not None:
                return reason
        elif isinstance(expected, int | float):
            if key not in prices:
                return f"{name} is missing"
            value = prices[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                return f"{name} must be a non-negative number, not {json.dumps(value)}"
    return None


def lambda_durations(prices: dict[str, Any], memory_mb: int) -> tuple[float, float]:
    """Default p50 and p95 of the HTTP function at ``memory_mb``: the measured warm
    invocation, slowed in proportion below a full vCPU, plus the stated DynamoDB round trip
    (``lambda_defaults`` in the prices file says where each figure comes from)."""
    d = prices["lambda_defaults"]
    warm = d["warm_invocation_ms"] * max(1.0, d["full_core_memory_mb"] / memory_mb)
    trip = d["dynamodb_round_trip_ms"]
    return warm + trip["p50"], warm + trip["p95"]
