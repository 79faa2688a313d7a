"""deploy/local: the smoke script passes against the installed runtime, the example config
names only settings the CLI knows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orders_local.arguments import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "local"


@pytest.mark.slow
def test_the_smoke_script_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "smoke.py"), "--orders-local", ""],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [line.split()[1].rstrip(":") for line in result.stdout.splitlines()]
    assert steps == ["start", "create", "read", "confirm", "cancel", "stop", "events"]


def test_the_example_environment_file_matches_the_cli() -> None:
    names = set(  # set, or commented out (authentication is off by default)
        re.findall(r"^(?:# )?(ORDERS_\w+)=", (DEPLOY / "orders-local.env").read_text(), re.M)
    )
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    documented = set(re.findall(r"ORDERS_\w+", help_text))
    assert names
    assert names <= documented
