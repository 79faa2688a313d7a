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
from deploy.aws.stack import PROJECT_TAG, OrdersStack, StackSettings  # noqa: E402

from orders_core.http import ROUTES  # noqa: E402


def synth(tmp: Path, **settings: Any) -> tuple[Template, dict[str, Any]]:
    code_dir = tmp / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "placeholder.py").write_text("# the real bundle is tested in test_bundle.py\n")
    app = cdk.App(outdir=str(tmp / "out"))
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
        "orders_aws.http_handler.handler",
        "orders_aws.queue_handler.handler",
        "orders_aws.relay_handler.handler",
    ]
    for fn in functions:
        assert fn["Architectures"] == ["arm64"]
        assert fn["Runtime"] == "python3.12"
        assert fn["MemorySize"] == 512
        assert fn["Timeout"] in (10, 60)
        assert fn["TracingConfig"] == {"Mode": "Active"}
        assert fn["LoggingConfig"]["LogFormat"] == "JSON"
        assert "ORDERS_TABLE" in fn["Environment"]["Variables"]
    http = next(f for f in functions if f["Handler"].endswith("http_handler.handler"))
    assert http["ReservedConcurrentExecutions"] == 50
    for group in of_type(resources, "AWS::Logs::LogGroup"):
        assert group["RetentionInDays"] == 30


def test_every_route_of_the_core_binding_is_on_the_api(resources: dict[str, Any]) -> None:
    keys = {r["RouteKey"] for r in of_type(resources, "AWS::ApiGatewayV2::Route")}
    assert keys == {f"{r.method} {r.template}" for r in ROUTES}
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
    assert stream["MaximumRecordAgeInSeconds"] == 86400
    assert stream["MaximumRetryAttempts"] == 10
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
    assert metrics.count(("ApproximateNumberOfMessagesVisible", "Maximum")) == 2
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


def test_the_app_synthesizes_offline_from_the_command_line(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    import zipfile

    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("placeholder.py", "")
    app = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "app.py"
    # The CDK CLI hands `-c key=value` to the app this way.
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path / "out"),
        "CDK_CONTEXT_JSON": json.dumps({"bundle": str(bundle)}),
    }
    result = subprocess.run(
        [sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "OrdersCore-dev.template.json").is_file()
