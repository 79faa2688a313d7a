"""The CDK stack, synthesized offline and asserted property by property; cfn-lint clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
cdk = pytest.importorskip("aws_cdk", reason="the deploy nox session installs aws-cdk-lib")

from aws_cdk import aws_lambda as lambda_  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402
from deploy.aws.settings import SettingsError, StackSettings  # noqa: E402
from deploy.aws.stack import NONE_WARNING, PROJECT_TAG, OrdersStack  # noqa: E402

from orders_core.edges.http import ROUTES  # noqa: E402

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
JWT = {"jwt_issuer": ISSUER, "jwt_audience": ("client-1", "client-2")}
PUBLIC = {"GET /healthz", "GET /openapi.json"}
APP = Path(__file__).resolve().parents[2] / "deploy" / "aws"


def synth(tmp: Path, **settings: Any) -> tuple[Template, dict[str, Any]]:
    code_dir = tmp / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "placeholder.py").write_text("# the real bundle is tested in test_bundle.py\n")
    app = cdk.App(outdir=str(tmp / "out"))
    if settings.get("auth", "jwt") == "jwt":
        settings = {**JWT, **settings}
    stack = OrdersStack(
        app,
        "OrdersCore-test",
        code=lambda_.Code.from_asset(str(code_dir)),
        settings=StackSettings(**settings),
    )
    template = Template.from_stack(stack)
    return template, template.to_json()


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, dict[str, Any]]:
    return synth(tmp_path_factory.mktemp("cdk"), reserved_concurrency=50)


@pytest.fixture(scope="module")
def template(synthesized: tuple[Template, dict[str, Any]]) -> Template:
    return synthesized[0]


@pytest.fixture(scope="module")
def resources(synthesized: tuple[Template, dict[str, Any]]) -> dict[str, Any]:
    return dict(synthesized[1]["Resources"])


def of_type(resources: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == kind]


def test_the_table(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "GlobalSecondaryIndexes": [
                Match.object_like({"IndexName": "gsi1", "Projection": {"ProjectionType": "ALL"}})
            ],
        },
    )


def test_the_functions(template: Template, resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    assert sorted(f["Handler"] for f in functions) == [
        "orders_aws.apigw.handler",
        "orders_aws.sqs.handler",
        "orders_aws.stream.handler",
    ]
    for fn in functions:
        assert fn["Architectures"] == ["arm64"]
        assert fn["Runtime"] == "python3.12"
        assert fn["MemorySize"] == 512
        assert fn["Timeout"] in (10, 60)
        assert fn["TracingConfig"] == {"Mode": "Active"}
        assert fn["LoggingConfig"]["LogFormat"] == "JSON"
        assert "ORDERS_TABLE" in fn["Environment"]["Variables"]
    http = next(f for f in functions if f["Handler"].endswith("apigw.handler"))
    assert http["ReservedConcurrentExecutions"] == 50
    for group in of_type(resources, "AWS::Logs::LogGroup"):
        assert group["RetentionInDays"] == 30


def test_every_route_of_the_core_binding_is_on_the_api(resources: dict[str, Any]) -> None:
    keys = {r["RouteKey"] for r in of_type(resources, "AWS::ApiGatewayV2::Route")}
    # $default: unmatched requests get the function's problem+json (decision 0012).
    assert keys == {f"{r.method} {r.template}" for r in ROUTES} | {"$default"}
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api")
    assert api["ProtocolType"] == "HTTP"


def test_the_command_queue_has_a_dlq_and_partial_batch_responses(
    template: Template, resources: dict[str, Any]
) -> None:
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
            "SqsManagedSseEnabled": True,
        },
    )
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    sqs_mapping = next(m for m in mappings if "StartingPosition" not in m)
    assert sqs_mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_relay_reads_the_stream_safely(resources: dict[str, Any]) -> None:
    stream = next(
        m for m in of_type(resources, "AWS::Lambda::EventSourceMapping") if "StartingPosition" in m
    )
    assert stream["BisectBatchOnFunctionError"] is True
    # Below the stream's 24 h retention; no retry cap (-1, Lambda's default), so an outage is
    # waited out in order and the relay dead-letters with content before the age is reached.
    assert stream["MaximumRecordAgeInSeconds"] == 6 * 3600
    assert stream.get("MaximumRetryAttempts", -1) == -1
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in stream["DestinationConfig"]
    (pattern,) = stream["FilterCriteria"]["Filters"]
    assert "ORDER#" in pattern["Pattern"]


def test_the_api_stage_writes_access_logs_without_payloads(resources: dict[str, Any]) -> None:
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage")
    settings = stage["AccessLogSettings"]
    assert "DestinationArn" in settings
    fields = json.loads(settings["Format"])
    assert {"requestId", "status", "latencyMs"} <= set(fields)
    assert not any("body" in v or "querystring" in v.lower() for v in fields.values())


def test_the_bus_and_the_outputs(
    synthesized: tuple[Template, dict[str, Any]], template: Template
) -> None:
    template.resource_count_is("AWS::Events::EventBus", 1)
    assert {"ApiEndpoint", "TableName", "EventBusName"} <= set(synthesized[1]["Outputs"])


def statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for resource in resources.values():
        props = resource.get("Properties", {})
        documents = [props.get("PolicyDocument")]
        documents += [p.get("PolicyDocument") for p in props.get("Policies", [])]
        for document in filter(None, documents):
            found += document["Statement"]
    return found


def test_least_privilege_no_wildcard_actions(resources: dict[str, Any]) -> None:
    unscopable = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "dynamodb:ListStreams"}
    checked = 0
    for statement in statements(resources):
        if statement.get("Effect") != "Allow":
            continue  # e.g. enforce_ssl's Deny of sqs:* over plain HTTP: a wildcard that restricts
        acts = statement.get("Action", [])
        acts = [acts] if isinstance(acts, str) else acts
        for action in acts:
            checked += 1
            assert "*" not in action, f"wildcard action {action}"
        if statement.get("Resource") == "*":
            # These APIs take no resource ARN; everything else names its resource.
            assert set(acts) <= unscopable, acts
    assert checked > 10


def test_every_taggable_resource_carries_the_cost_allocation_tag(resources: dict[str, Any]) -> None:
    tagged = 0
    for name, resource in resources.items():
        tags = resource.get("Properties", {}).get("Tags")
        if tags is None:
            continue
        tagged += 1
        pairs = tags.items() if isinstance(tags, dict) else [(t["Key"], t["Value"]) for t in tags]
        assert PROJECT_TAG in set(pairs), name
    assert tagged >= 10


def test_alarms_cover_errors_throttles_p95_and_dlq_depth(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    metrics = [
        (a.get("MetricName"), a.get("ExtendedStatistic") or a.get("Statistic")) for a in alarms
    ]
    assert metrics.count(("Errors", "Sum")) == 3
    assert metrics.count(("Throttles", "Sum")) == 3
    assert metrics.count(("Duration", "p95")) == 3
    assert metrics.count(("ApproximateNumberOfMessagesVisible", "Maximum")) == 3
    assert all(a["AlarmActions"] for a in alarms)


def test_a_monthly_budget_filtered_by_the_tag(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Budgets::Budget",
        {
            "Budget": {
                "BudgetType": "COST",
                "TimeUnit": "MONTHLY",
                "BudgetLimit": {"Amount": {"Ref": "BudgetAmount"}, "Unit": "USD"},
                "CostFilters": {"TagKeyValue": ["user:project$orders-core"]},
            },
            "NotificationsWithSubscribers": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Subscribers": [
                                {"Address": {"Ref": "AlertEmail"}, "SubscriptionType": "EMAIL"}
                            ],
                        }
                    )
                ]
            ),
        },
    )


def test_provisioned_concurrency_is_off_by_default_and_on_an_alias_when_asked(
    tmp_path: Path, resources: dict[str, Any]
) -> None:
    assert of_type(resources, "AWS::Lambda::Alias") == []
    template, _ = synth(tmp_path, provisioned=5, architecture="x86_64", memory=1024)
    template.has_resource_properties(
        "AWS::Lambda::Alias",
        {
            "Name": "live",
            "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 5},
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Architectures": ["x86_64"],
            "MemorySize": 1024,
        },
    )


def cfn_lint() -> str:
    """The cfn-lint beside this interpreter (the deploy session installs it)."""
    path = Path(sys.executable).with_name("cfn-lint")
    if not path.exists():
        pytest.fail("cfn-lint is not installed next to this Python; run `nox -s deploy`")
    return str(path)


def test_cfn_lint_passes(synthesized: tuple[Template, dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(synthesized[1]))
    # W3005: CDK adds DependsOn the role next to a GetAtt of it; harmless and not ours.
    result = subprocess.run(
        [cfn_lint(), "--ignore-checks", "W3005", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def routes(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["RouteKey"]: r for r in of_type(resources, "AWS::ApiGatewayV2::Route")}


def test_every_route_but_health_and_openapi_has_the_jwt_authorizer(
    resources: dict[str, Any],
) -> None:
    ((authorizer_id, authorizer),) = [
        (k, r["Properties"])
        for k, r in resources.items()
        if r["Type"] == "AWS::ApiGatewayV2::Authorizer"
    ]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["JwtConfiguration"] == {
        "Issuer": ISSUER,
        "Audience": ["client-1", "client-2"],
    }
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    found = routes(resources)
    for key, route in found.items():
        if key in PUBLIC:
            assert route.get("AuthorizationType", "NONE") == "NONE", key
            assert "AuthorizerId" not in route, key
        else:
            assert route["AuthorizationType"] == "JWT", key
            assert route["AuthorizerId"] == {"Ref": authorizer_id}, key
    assert len(found) == len(ROUTES) + 1


def test_auth_iam_puts_the_iam_authorizer_on_the_same_routes(tmp_path: Path) -> None:
    _, template = synth(tmp_path, auth="iam")
    resources = template["Resources"]
    assert of_type(resources, "AWS::ApiGatewayV2::Authorizer") == []
    for key, route in routes(resources).items():
        expected = "NONE" if key in PUBLIC else "AWS_IAM"
        assert route.get("AuthorizationType", "NONE") == expected, key
    (http,) = [f for f in of_type(resources, "AWS::Lambda::Function") if "apigw" in f["Handler"]]
    assert http["Environment"]["Variables"]["ORDERS_AUTH_MODE"] == "iam"


def test_auth_none_is_loud_and_tagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template, body = synth(tmp_path, auth="none")
    assert NONE_WARNING in capsys.readouterr().err
    resources = body["Resources"]
    assert of_type(resources, "AWS::ApiGatewayV2::Authorizer") == []
    assert all(r.get("AuthorizationType", "NONE") == "NONE" for r in routes(resources).values())
    template.has_resource_properties(
        "AWS::DynamoDB::Table", {"Tags": Match.array_with([{"Key": "auth", "Value": "none"}])}
    )
    (http,) = [f for f in of_type(resources, "AWS::Lambda::Function") if "apigw" in f["Handler"]]
    assert http["Environment"]["Variables"]["ORDERS_AUTH_MODE"] == "none"


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, "jwtIssuer and jwtAudience"),
        ({"jwt_issuer": ISSUER}, "jwtAudience"),
        ({"jwt_audience": ("client-1",)}, "jwtIssuer"),
    ],
)
def test_jwt_without_issuer_or_audience_fails_naming_them(
    given: dict[str, Any], named: str
) -> None:
    with pytest.raises(SettingsError, match=f"needs {named}: pass") as raised:
        StackSettings(**given)
    assert "-c auth=none" in str(raised.value)
    assert "-c jwtIssuer=" in str(raised.value)


def test_context_reaches_the_settings() -> None:
    app = cdk.App(
        context={
            "auth": "jwt",
            "jwtIssuer": ISSUER,
            "jwtAudience": "a, b",
            "throttleRate": "5",
            "throttleBurst": 10,
            "adminRoleArns": "arn:aws:iam::123456789012:role/ops",
        }
    )
    settings = StackSettings.from_context(app.node)
    assert settings.jwt_audience == ("a", "b")
    assert (settings.throttle_rate, settings.throttle_burst) == (5, 10)
    assert settings.admin_role_arns == ("arn:aws:iam::123456789012:role/ops",)
    with pytest.raises(SettingsError, match="jwtIssuer and jwtAudience"):
        StackSettings.from_context(cdk.App().node)
    with pytest.raises(SettingsError, match="auth='open'"):
        StackSettings.from_context(cdk.App(context={"auth": "open"}).node)


def test_the_default_stage_is_throttled(tmp_path: Path, resources: dict[str, Any]) -> None:
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage")
    assert stage["StageName"] == "$default"
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": 100,
        "ThrottlingBurstLimit": 200,
    }
    _, other = synth(tmp_path, throttle_rate=7, throttle_burst=9)
    (stage,) = of_type(other["Resources"], "AWS::ApiGatewayV2::Stage")
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": 7, "ThrottlingBurstLimit": 9}


def test_the_http_function_learns_the_auth_mode_and_admin_settings(
    tmp_path: Path, resources: dict[str, Any]
) -> None:
    (http,) = [f for f in of_type(resources, "AWS::Lambda::Function") if "apigw" in f["Handler"]]
    env = http["Environment"]["Variables"]
    assert env["ORDERS_AUTH_MODE"] == "jwt"
    assert "ORDERS_ADMIN_SCOPE" not in env  # the Lambda's own default applies
    assert "ORDERS_ADMIN_ROLE_ARNS" not in env
    _, other = synth(
        tmp_path,
        admin_scope="orders/admin",
        admin_role_arns=("arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"),
    )
    (http,) = [
        f for f in of_type(other["Resources"], "AWS::Lambda::Function") if "apigw" in f["Handler"]
    ]
    env = http["Environment"]["Variables"]
    assert env["ORDERS_ADMIN_SCOPE"] == "orders/admin"
    assert env["ORDERS_ADMIN_ROLE_ARNS"] == "arn:aws:iam::1:role/a,arn:aws:iam::1:role/b"


def allowed(resources: dict[str, Any], handler: str) -> list[tuple[str, str]]:
    """(action, resource as JSON) allowed to the role of the function with this handler."""
    (name,) = [
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == handler
    ]
    role = resources[name]["Properties"]["Role"]["Fn::GetAtt"][0]
    found = []
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::IAM::Policy" or {"Ref": role} not in props["Roles"]:
            continue
        for statement in props["PolicyDocument"]["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            acts = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            targets = (
                statement["Resource"]
                if isinstance(statement["Resource"], list)
                else [statement["Resource"]]
            )
            found += [(a, json.dumps(t)) for a in acts for t in targets]
    return found


def test_each_function_may_do_only_its_own_writes(resources: dict[str, Any]) -> None:
    http = {a for a, _ in allowed(resources, "orders_aws.apigw.handler")}
    assert "dynamodb:PutItem" in http
    assert not http & {"events:PutEvents", "sqs:SendMessage"}
    relay = allowed(resources, "orders_aws.stream.handler")
    assert not {a for a, _ in relay} & {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    }
    sends = {t for a, t in relay if a == "sqs:SendMessage"}
    # The events DLQ (its own letters) and the mapping's on-failure destination, nothing else.
    assert sends == {queue_arn(resources, "EventsDlq"), queue_arn(resources, "RelayDlq")}
    queue = allowed(resources, "orders_aws.sqs.handler")
    assert {t for a, t in queue if a == "sqs:SendMessage"} == {queue_arn(resources, "CommandsDlq")}


def queue_arn(resources: dict[str, Any], prefix: str) -> str:
    (name,) = [
        n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and n.startswith(prefix)
    ]
    return json.dumps({"Fn::GetAtt": [name, "Arn"]})


def test_the_relay_dead_letters_with_content_before_lambda_discards(
    resources: dict[str, Any],
) -> None:
    (relay,) = [f for f in of_type(resources, "AWS::Lambda::Function") if "stream" in f["Handler"]]
    env = relay["Environment"]["Variables"]
    assert "EventsDlq" in env["ORDERS_EVENTS_DLQ_URL"]["Ref"]
    stream = next(
        m for m in of_type(resources, "AWS::Lambda::EventSourceMapping") if "StartingPosition" in m
    )
    assert int(env["ORDERS_RELAY_GIVE_UP_SECONDS"]) < stream["MaximumRecordAgeInSeconds"] < 86400
    (queue_fn,) = [
        f for f in of_type(resources, "AWS::Lambda::Function") if "sqs.h" in f["Handler"]
    ]
    assert "CommandsDlq" in queue_fn["Environment"]["Variables"]["ORDERS_POISON_QUEUE_URL"]["Ref"]


def test_every_queue_refuses_plain_http(resources: dict[str, Any]) -> None:
    queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    guarded = set()
    for policy in of_type(resources, "AWS::SQS::QueuePolicy"):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                guarded |= {q["Ref"] for q in policy["Queues"]}
    assert len(queues) == 4
    assert guarded == queues


def cdk_command(tmp_path: Path, context: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run the app command cdk.json names, as `cdk synth` would from deploy/aws: the same
    argv with this interpreter, `-c` context through CDK_CONTEXT_JSON, output in tmp."""
    bundle = tmp_path / "bundle.zip"
    import shlex
    import zipfile

    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("placeholder.py", "")
    argv = shlex.split(json.loads((APP / "cdk.json").read_text())["app"])
    assert argv[0] in ("python", "python3")
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path / "out"),
        "CDK_CONTEXT_JSON": json.dumps({"bundle": str(bundle), **context}),
    }
    return subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_cdk_json_names_an_app_that_synthesizes_offline(tmp_path: Path) -> None:
    result = cdk_command(tmp_path, {"jwtIssuer": ISSUER, "jwtAudience": "client-1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "OrdersCore-dev.template.json").is_file()


def test_the_app_without_jwt_context_stops_with_the_message(tmp_path: Path) -> None:
    result = cdk_command(tmp_path, {})
    assert result.returncode == 1
    assert "jwtIssuer and jwtAudience" in result.stderr
    assert "-c auth=none" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "OrdersCore-dev.template.json").exists()
