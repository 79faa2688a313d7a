"""serverless.yml: packaged offline by Serverless Framework v3, its template cfn-lint clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from orders_core.http import ROUTES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "aws"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    serverless = os.environ.get("SERVERLESS_BIN")
    if not serverless or not Path(serverless).exists():
        pytest.fail(
            "SERVERLESS_BIN must name Serverless Framework v3's binary (nox -s deploy sets it)"
        )
    tmp = tmp_path_factory.mktemp("sls")
    bundle = tmp / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("placeholder.py", "")
    env = {
        **os.environ,
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        "ORDERS_BUNDLE": str(bundle),
    }
    out = tmp / "package"
    result = subprocess.run(
        [serverless, "package", "--stage", "test", "--region", "us-east-1", "--package", str(out)],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = out / "cloudformation-template-update-stack.json"
    return {"path": path, "template": json.loads(path.read_text())}


def test_serverless_packages_the_same_routes_and_functions(packaged: dict[str, Any]) -> None:
    resources = packaged["template"]["Resources"]
    routes = {
        r["Properties"]["RouteKey"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }
    assert routes == {f"{r.method} {r.template}" for r in ROUTES}
    functions = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert sorted(f["Handler"] for f in functions) == [
        "orders_aws.http_handler.handler",
        "orders_aws.queue_handler.handler",
        "orders_aws.relay_handler.handler",
    ]
    assert all(f["Architectures"] == ["arm64"] and f["Runtime"] == "python3.12" for f in functions)
    assert all(f["TracingConfig"] == {"Mode": "Active"} for f in functions)
    for fn in functions:  # plain strings, so local emulation can read them
        assert all(isinstance(v, str) for v in fn["Environment"]["Variables"].values())


def test_no_wildcard_actions_in_the_serverless_template(packaged: dict[str, Any]) -> None:
    text = json.dumps(packaged["template"])
    for resource in packaged["template"]["Resources"].values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                acts = (
                    statement["Action"]
                    if isinstance(statement["Action"], list)
                    else [statement["Action"]]
                )
                # The framework's own log statements name log-group ARNs; none may be "*".
                assert all("*" not in a for a in acts), acts
    assert "ReportBatchItemFailures" in text


def test_cfn_lint_passes_on_the_serverless_template(packaged: dict[str, Any]) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    # W3005: the framework adds DependsOn next to a Ref of the same resource.
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", "W3005", "--", str(packaged["path"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
