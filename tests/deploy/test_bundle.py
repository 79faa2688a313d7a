"""The Lambda bundle: contents, no boto3, reproducible bytes, size limit, imports with the
target Python from the unzipped bundle."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
from deploy.aws.bundle import BundleError, build, check_size, find_interpreter

pytestmark = pytest.mark.slow
PY = "3.12"


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first = build("arm64", PY, tmp_path_factory.mktemp("a"))
    second = build("arm64", PY, tmp_path_factory.mktemp("b"))
    return first, second


def names(bundle: Path) -> list[str]:
    with zipfile.ZipFile(bundle) as archive:
        return archive.namelist()


def test_the_bundle_is_reproducible_byte_for_byte(arm64: tuple[Path, Path]) -> None:
    first, second = arm64
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )


def test_the_bundle_holds_our_code_and_arm64_wheels_but_no_sdk(arm64: tuple[Path, Path]) -> None:
    listing = names(arm64[0])
    tops = {n.split("/")[0] for n in listing}
    assert {"orders_core", "orders_aws", "pydantic", "pydantic_core", "cloudevents"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "orders_local"}
    assert not tops & {"uvicorn", "httptools", "uvloop", "watchfiles", "websockets"}  # local
    assert any(
        "aarch64" in n and n.endswith(".so") for n in listing if n.startswith("pydantic_core/")
    )
    assert "orders_aws/apigw.py" in listing
    assert listing == sorted(listing)


def test_bytecode_is_there_exactly_when_a_target_interpreter_is(arm64: tuple[Path, Path]) -> None:
    pycs = [n for n in names(arm64[0]) if n.endswith(f".cpython-{PY.replace('.', '')}.pyc")]
    if find_interpreter(PY) is None:
        assert pycs == []
    else:
        assert "orders_core/application/__pycache__/_service.cpython-312.pyc" in pycs


def test_the_size_is_under_the_limit_and_the_limit_bites(arm64: tuple[Path, Path]) -> None:
    assert check_size(arm64[0], 10.0) < 10.0
    with pytest.raises(BundleError, match=r"over the 0\.5 MB limit"):
        check_size(arm64[0], 0.5)


def test_the_handlers_import_from_the_unzipped_bundle(tmp_path: Path) -> None:
    interpreter = find_interpreter(PY)
    if interpreter is None:
        pytest.skip(f"no Python {PY} interpreter on this machine to import the bundle with")
    import platform

    arch = "x86_64" if platform.machine() in ("x86_64", "AMD64") else "arm64"
    bundle = build(arch, PY, tmp_path / "dist")
    unzipped = tmp_path / "task"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unzipped)
    # -I -S: only the bundle and the standard library, as on Lambda (boto3 aside, which the
    # runtime provides and these modules import only when a client is built).
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import orders_aws.apigw, orders_aws.sqs, orders_aws.stream, orders_aws.eventbridge; "
        "import pydantic_core, orders_core.application; print(orders_core.application.__file__)"
    )
    result = subprocess.run(
        [interpreter, "-I", "-S", "-c", code, str(unzipped)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(unzipped))
