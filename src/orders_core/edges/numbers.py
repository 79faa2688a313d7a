"""Numbers as protocols write them: ASCII digits only.

``str.isdigit()`` is true for a superscript two (U+00B2), which ``int()`` then refuses (a
500 where a 400 was due); ``int()`` and ``float()`` take Arabic-Indic and fullwidth digits,
``"1_000"`` and ``" +5 "``, which no HTTP field, query parameter or setting means.
Every number read from input goes through here.
"""

from __future__ import annotations

import re
from typing import Final

_DIGITS: Final = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+", re.ASCII)
MAX_DIGITS: Final = 18
"""Longer runs of digits are refused: far past any limit here, and inside int64."""


def ascii_int(text: str, *, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a non-negative integer if it is 1 to ``max_digits`` ASCII digits, else None."""
    if len(text) > max_digits or _DIGITS.fullmatch(text) is None:
        return None
    return int(text)


def ascii_decimal(text: str) -> float | None:
    """``text`` as a non-negative number if it is ASCII digits with an optional fraction
    (``5``, ``0.25``, ``.5``), else None: no sign, exponent, ``inf``, ``nan`` or ``_``."""
    if len(text) > 2 * MAX_DIGITS or _DECIMAL.fullmatch(text) is None:
        return None
    return float(text)
