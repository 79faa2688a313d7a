"""Write capacity of an item, by DynamoDB's documented sizing rules.

The store logs what each commit costs; the figures are in docs/decisions/0005-dynamodb-table.md
and ``bench/write_cost.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes an item counts for, by DynamoDB's documented sizing rules.

    Attribute names count as UTF-8 bytes; strings as UTF-8 bytes; binary as raw bytes;
    numbers as about one byte per two significant digits plus one.
    """
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            size += len(raw.encode())
        elif kind == "B":
            size += len(raw)
        elif kind == "N":
            digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
            size += math.ceil(len(digits) / 2) + 1
        elif kind == "BOOL" or kind == "NULL":
            size += 1
        else:  # lists and maps do not occur in our items
            raise ValueError(f"unsized attribute type {kind}")
    return size


def write_units(item: Mapping[str, Any], *, transactional: bool = False) -> int:
    """Write capacity units for one item: 1 per started KB, doubled inside a transaction."""
    units = max(1, math.ceil(item_size(item) / 1024))
    return units * 2 if transactional else units
