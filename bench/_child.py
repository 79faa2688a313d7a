"""Helpers the benchmarks share: timing a fresh process, fake AWS settings, saving results.

Not a benchmark itself (``nox -s bench`` runs only ``bench/[!_]*.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

FAKE_AWS = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
}
"""Enough for botocore to build a client; every call is answered without a network."""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``argv`` to completion: (wall milliseconds from spawn to exit, its stdout)."""
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True, timeout=120)
    return (time.perf_counter() - start) * 1000, out.stdout


def save(name: str, payload: Any) -> Path:
    """Write ``bench/results/<name>.json`` (not committed) and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
