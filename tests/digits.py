"""Digits that are not ASCII, named (ruff flags the characters themselves as ambiguous).

Superscripts pass ``str.isdigit()`` but not ``int()``; Arabic-Indic and fullwidth digits pass
both. None of them is a number in an HTTP field, a query parameter or a setting.
"""

SUP1 = "\N{SUPERSCRIPT ONE}"
SUP2 = "\N{SUPERSCRIPT TWO}"
SUP3 = "\N{SUPERSCRIPT THREE}"
AR0 = "\N{ARABIC-INDIC DIGIT ZERO}"
AR1 = "\N{ARABIC-INDIC DIGIT ONE}"
AR5 = "\N{ARABIC-INDIC DIGIT FIVE}"
FW0 = "\N{FULLWIDTH DIGIT ZERO}"
FW1 = "\N{FULLWIDTH DIGIT ONE}"
FW8 = "\N{FULLWIDTH DIGIT EIGHT}"
