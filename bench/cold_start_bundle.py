"""Cold start from the Lambda bundle's files, with and without precompiled bytecode.

    python bench/cold_start_bundle.py [--runs 7]

Builds the bundle for this machine's architecture with ``deploy.aws.bundle`` (Python 3.12,
which must be on PATH), unzips it twice (one copy stripped of ``__pycache__``), installs
boto3 for Python 3.12 beside it (the Lambda runtime provides boto3, precompiled), then
times fresh ``python3.12 -I -S`` processes importing ``orders_aws.apigw`` and
answering one POST /orders with botocore's Stubber, as bench/cold_start.py does.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# bench/_child.py: each script runs with bench/ first on sys.path
from _child import FAKE_AWS, save, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.aws.bundle import build, find_interpreter  # noqa: E402

CHILD = r"""
import time
t0 = time.perf_counter()
import sys
sys.path[:0] = [{task!r}, {runtime!r}]
import orders_aws.apigw as mod
from botocore.stub import Stubber
from orders_aws.bootstrap import runtime
stub = Stubber(runtime().dynamodb)
stub.add_response("put_item", {{}})
stub.activate()
class Ctx:
    aws_request_id = "r"; function_name = "bench"
    def get_remaining_time_in_millis(self): return 10_000
event = {{"version": "2.0", "rawPath": "/orders", "rawQueryString": "",
          "headers": {{"content-type": "application/json"}},
          "requestContext": {{"http": {{"method": "POST", "path": "/orders"}}}},
          "body": '{{"items":[{{"id":"sku-1","qty":2}}]}}', "isBase64Encoded": False}}
out = mod.handler(event, Ctx())
assert out["statusCode"] == 201, out
print("RESULT", (time.perf_counter() - t0) * 1000)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = find_interpreter("3.12")
    if python is None:
        print("no Python 3.12 on PATH: cannot run the bundle as Lambda would", file=sys.stderr)
        return 1
    # The real binary, not a pyenv shim: the children run with a bare environment.
    python = subprocess.run(
        [python, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    arch = "x86_64" if platform.machine() in ("x86_64", "AMD64") else "arm64"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = build(arch, "3.12", work / "dist")
        with_pyc, without_pyc = work / "with", work / "without"
        for target in (with_pyc, without_pyc):
            with zipfile.ZipFile(bundle) as archive:
                archive.extractall(target)
        for cache in list(without_pyc.rglob("__pycache__")):
            shutil.rmtree(cache)
        runtime = work / "runtime"
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--target", str(runtime), "boto3"], check=True
        )
        subprocess.run([python, "-m", "compileall", "-q", str(runtime)], check=True)
        env = {
            **FAKE_AWS,
            "ORDERS_TABLE": "orders",
            "LOG_LEVEL": "WARNING",
            "PATH": "/usr/bin:/bin",
        }
        results: dict[str, list[float]] = {"with .pyc": [], "without .pyc": []}
        dirs = {"with .pyc": with_pyc, "without .pyc": without_pyc}
        for _ in range(args.runs):
            for name, task in dirs.items():
                code = CHILD.format(task=str(task), runtime=str(runtime))
                # -B: nothing written back, so every "without" run compiles from source.
                wall, stdout = timed([python, "-I", "-S", "-B", "-c", code], env)
                assert "RESULT" in stdout, stdout
                results[name].append(wall)
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"\nCold start from the bundle ({arch}, Python 3.12, {args.runs} runs, median wall ms)")
    for name, value in med.items():
        print(f"{name:<14}{value:>8.0f}")
    print(f"without / with: {med['without .pyc'] / med['with .pyc']:.2f}x")
    save("cold_start_bundle", {"median_ms": med, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
