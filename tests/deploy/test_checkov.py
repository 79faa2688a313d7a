"""checkov on the synthesized CDK template passes, with only the skips documented in
deploy/aws/checkov.yaml. Run by `nox -s checkov` (checkov lives in its own environment)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
cdk = pytest.importorskip("aws_cdk", reason="the checkov nox session installs aws-cdk-lib")

from aws_cdk import aws_lambda as lambda_  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from deploy.aws.settings import StackSettings  # noqa: E402
from deploy.aws.stack import OrdersStack  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "checkov.yaml"


CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    "context",
    [{}, {"container": "true", "certificateArn": CERT}],
    ids=["functions", "with-container"],
)
def test_checkov_passes_with_only_documented_skips(tmp_path: Path, context: dict[str, str]) -> None:
    checkov = os.environ.get("CHECKOV_BIN")
    if not checkov:
        pytest.fail("CHECKOV_BIN must name checkov's binary (nox -s checkov sets it)")
    code = tmp_path / "code"
    code.mkdir()
    (code / "placeholder.py").write_text("")
    app = cdk.App(outdir=str(tmp_path / "out"), context=context)
    stack = OrdersStack(
        app,
        "OrdersCore-checkov",
        code=lambda_.Code.from_asset(str(code)),
        settings=StackSettings(jwt_issuer="https://issuer.example.com", jwt_audience=("client-1",)),
    )
    template = tmp_path / "template.json"
    template.write_text(json.dumps(Template.from_stack(stack).to_json()))
    result = subprocess.run(
        [checkov, "--config-file", str(CONFIG), "-f", str(template), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert summary["passed"] > 50
    # Every skipped check carries its reason on the line above it in the config.
    lines = CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- CKV_"):
            assert lines[i - 1].strip().startswith(("#", "- CKV_")), line
