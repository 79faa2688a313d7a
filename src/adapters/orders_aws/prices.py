"""The prices ``orders-cost`` reads: the bundled ``prices.json``, or a corrected copy; and
the measured throughput it sizes containers with (``throughput.json``).

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


def load_throughput() -> dict[str, Any]:
    """What one container worker served in the container benchmark (``throughput.json``:
    the bench, its date, commit and conditions, requests/s per worker and per vCPU)."""
    text = resources.files("orders_aws").joinpath("throughput.json").read_text()
    measured: dict[str, Any] = json.loads(text)
    return measured


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
