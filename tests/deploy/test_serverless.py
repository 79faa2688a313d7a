"""serverless.yml: packaged offline by Serverless Framework v3, its template cfn-lint clean,
authenticated by default and least-privilege per function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from orders_core.edges.http import ROUTES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "aws"
pytestmark = pytest.mark.slow
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
PARAMS = (f"--param=jwtIssuer={ISSUER}", "--param=jwtAudience=client-1")
PUBLIC = {"GET /healthz", "GET /openapi.json"}
DYNAMODB_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}


def package(tmp: Path, *params: str) -> subprocess.CompletedProcess[str]:
    serverless = os.environ.get("SERVERLESS_BIN")
    if not serverless or not Path(serverless).exists():
        pytest.fail(
            "SERVERLESS_BIN must name Serverless Framework v3's binary (nox -s deploy sets it)"
        )
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
    return subprocess.run(
        [
            serverless,
            "package",
            "--stage",
            "test",
            "--region",
            "us-east-1",
            "--package",
            str(out),
            *params,
        ],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("sls")
    result = package(tmp, *PARAMS)
    assert result.returncode == 0, result.stdout + result.stderr
    path = tmp / "package" / "cloudformation-template-update-stack.json"
    return {"path": path, "template": json.loads(path.read_text())}


@pytest.fixture(scope="module")
def resources(packaged: dict[str, Any]) -> dict[str, Any]:
    return dict(packaged["template"]["Resources"])


def test_serverless_packages_the_same_routes_and_functions(packaged: dict[str, Any]) -> None:
    resources = packaged["template"]["Resources"]
    routes = {
        r["Properties"]["RouteKey"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }
    assert routes == {f"{r.method} {r.template}" for r in ROUTES} | {"$default"}
    functions = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert sorted(f["Handler"] for f in functions) == [
        "orders_aws.apigw.handler",
        "orders_aws.sqs.handler",
        "orders_aws.stream.handler",
    ]
    assert all(f["Architectures"] == ["arm64"] and f["Runtime"] == "python3.12" for f in functions)
    assert all(f["TracingConfig"] == {"Mode": "Active"} for f in functions)
    (http,) = [f for f in functions if f["Handler"].endswith("apigw.handler")]
    # Plain strings, so local emulation of the HTTP function can read them.
    assert all(isinstance(v, str) for v in http["Environment"]["Variables"].values())
    assert http["Environment"]["Variables"]["ORDERS_AUTH_MODE"] == "jwt"


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


def routes(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }


def test_every_route_but_health_and_openapi_has_the_jwt_authorizer(
    resources: dict[str, Any],
) -> None:
    ((name, authorizer),) = [
        (n, r["Properties"])
        for n, r in resources.items()
        if r["Type"] == "AWS::ApiGatewayV2::Authorizer"
    ]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["JwtConfiguration"] == {"Issuer": ISSUER, "Audience": ["client-1"]}
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    found = routes(resources)
    assert "$default" in found
    for key, route in found.items():
        if key in PUBLIC:
            assert route.get("AuthorizationType", "NONE") == "NONE", key
        else:
            assert route["AuthorizationType"] == "JWT", key
            assert route["AuthorizerId"] == {"Ref": name}, key


def test_packaging_without_an_issuer_fails_naming_it(tmp_path: Path) -> None:
    result = package(tmp_path, "--param=jwtAudience=client-1")
    assert result.returncode != 0
    assert '"jwtIssuer" cannot be resolved' in result.stdout + result.stderr


def function_name(resources: dict[str, Any], handler: str) -> str:
    (name,) = [
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == handler
    ]
    return name


def allowed(resources: dict[str, Any], handler: str) -> list[tuple[str, str]]:
    """(action, resource as JSON) the role of the function with this handler allows."""
    role = resources[function_name(resources, handler)]["Properties"]["Role"]["Fn::GetAtt"][0]
    found = []
    for policy in resources[role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            acts = statement["Action"]
            targets = statement["Resource"]
            for action in acts if isinstance(acts, list) else [acts]:
                for target in targets if isinstance(targets, list) else [targets]:
                    found.append((action, json.dumps(target)))
    return found


def test_each_function_has_its_own_role(resources: dict[str, Any]) -> None:
    roles = {
        resources[function_name(resources, f"orders_aws.{h}.handler")]["Properties"]["Role"][
            "Fn::GetAtt"
        ][0]
        for h in ("apigw", "sqs", "stream")
    }
    assert len(roles) == 3
    assert "IamRoleLambdaExecution" not in resources  # no shared role left behind


def test_the_http_function_cannot_publish_events_or_send_messages(
    resources: dict[str, Any],
) -> None:
    actions = {a for a, _ in allowed(resources, "orders_aws.apigw.handler")}
    assert "dynamodb:PutItem" in actions
    assert not {a for a in actions if a.startswith(("events:", "sqs:"))}


def test_the_relay_cannot_write_the_table(resources: dict[str, Any]) -> None:
    granted = allowed(resources, "orders_aws.stream.handler")
    actions = {a for a, _ in granted}
    assert "events:PutEvents" in actions
    assert not actions & DYNAMODB_WRITES
    assert {t for a, t in granted if a == "sqs:SendMessage"} == {
        json.dumps({"Fn::GetAtt": [q, "Arn"]}) for q in ("EventsDlq", "RelayDlq")
    }


def test_poison_commands_reach_the_commands_dlq(resources: dict[str, Any]) -> None:
    queue_fn = resources[function_name(resources, "orders_aws.sqs.handler")]
    env = queue_fn["Properties"]["Environment"]["Variables"]
    assert env["ORDERS_POISON_QUEUE_URL"] == {"Ref": "CommandsDlq"}
    granted = allowed(resources, "orders_aws.sqs.handler")
    assert {t for a, t in granted if a == "sqs:SendMessage"} == {
        json.dumps({"Fn::GetAtt": ["CommandsDlq", "Arn"]})
    }
    assert not {a for a, _ in granted if a.startswith("events:")}


def test_the_relay_dead_letters_with_content_before_lambda_discards(
    resources: dict[str, Any],
) -> None:
    relay = resources[function_name(resources, "orders_aws.stream.handler")]
    env = relay["Properties"]["Environment"]["Variables"]
    assert env["ORDERS_EVENTS_DLQ_URL"] == {"Ref": "EventsDlq"}
    (stream,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "StartingPosition" in r["Properties"]
    ]
    assert int(env["ORDERS_RELAY_GIVE_UP_SECONDS"]) < stream["MaximumRecordAgeInSeconds"] < 86400
    assert stream["MaximumRetryAttempts"] == -1
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["RelayDlq", "Arn"]
    }


def test_every_queue_refuses_plain_http(resources: dict[str, Any]) -> None:
    queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    guarded: set[str] = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::SQS::QueuePolicy":
            continue
        props = resource["Properties"]
        for statement in props["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                arns = {t["Fn::GetAtt"][0] for t in statement["Resource"]}
                guarded |= arns & {q["Ref"] for q in props["Queues"]}
    assert queues == {"CommandsQueue", "CommandsDlq", "RelayDlq", "EventsDlq"}
    assert guarded == queues


def test_the_default_stage_is_throttled(resources: dict[str, Any]) -> None:
    stage = resources["HttpApiStage"]["Properties"]
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": 100,
        "ThrottlingBurstLimit": 200,
    }


def test_every_dlq_has_a_depth_alarm(resources: dict[str, Any]) -> None:
    watched = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert watched == {"CommandsDlq", "RelayDlq", "EventsDlq"}
