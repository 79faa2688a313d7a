"""Numbers on ``orders-cost``'s command line: ASCII decimals in a sane range, or a usage error.

argparse's ``type=float`` takes ``nan``, ``inf``, ``1e400``, ``1_000`` and Arabic-Indic or
fullwidth digits; a NaN then compared false against every bound and crashed deep in the
arithmetic (``math.ceil(nan)``). :func:`harden` swaps every ``float``/``int`` option of a
parser for these, so an option added later gets the same rule without asking.
"""

from __future__ import annotations

import argparse
from typing import Final

from orders_core.edges.numbers import ascii_decimal, ascii_int

LARGEST: Final = 1e15
"""Past any traffic or price this tool models, and far inside a float's exact integers."""


def non_negative(text: str) -> float:
    value = ascii_decimal(text)
    if value is None:
        if text.startswith("-") and ascii_decimal(text[1:]) is not None:
            raise argparse.ArgumentTypeError(f"{text} cannot be negative")
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number: use ASCII digits with an optional fraction, like "
            "1000000 or 0.5 (no sign, exponent, separators, nan or inf)"
        )
    if value > LARGEST:
        raise argparse.ArgumentTypeError(f"{text} is larger than this tool models ({LARGEST:g})")
    return value


def fraction(text: str) -> float:
    value = non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def whole(text: str) -> int:
    value = ascii_int(text)
    if value is None:
        if text.startswith("-") and ascii_int(text[1:]) is not None:
            raise argparse.ArgumentTypeError(f"{text} cannot be negative")
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number in ASCII digits")
    return value


def harden(parser: argparse.ArgumentParser) -> None:
    """Every option of ``parser`` typed ``float`` or ``int`` parses as above instead."""
    for action in parser._actions:  # argparse keeps no public list of its actions
        if action.type is float:
            action.type = non_negative
        elif action.type is int:
            action.type = whole
