"""The optional Fargate service (``-c container=true``, deploy/aws/container.py), synthesized
offline: what it runs, what it may do, how it is reached and watched; and that without the
flag nothing of it exists."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
cdk = pytest.importorskip("aws_cdk", reason="the deploy nox session installs aws-cdk-lib")

from aws_cdk import aws_lambda as lambda_  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from deploy.aws.container import CONTAINER_PORT, HEALTH_COMMAND, HTTP_WARNING  # noqa: E402
from deploy.aws.settings import SettingsError, StackSettings  # noqa: E402
from deploy.aws.stack import PROJECT_TAG, OrdersStack  # noqa: E402

from tests.deploy.test_cdk_stack import JWT, cfn_lint, of_type, statements  # noqa: E402
from tests.deploy.test_container import cli_env_names  # noqa: E402

CONTAINER_TYPES = ("AWS::ECS::", "AWS::ElasticLoadBalancingV2::", "AWS::EC2::VPC")
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


def synth(tmp: Path, context: dict[str, Any], **settings: Any) -> dict[str, Any]:
    code = tmp / "code"
    code.mkdir(exist_ok=True)
    (code / "placeholder.py").write_text("")
    app = cdk.App(outdir=str(tmp / "out"), context=context)
    stack = OrdersStack(
        app,
        "OrdersCore-test",
        code=lambda_.Code.from_asset(str(code)),
        settings=StackSettings(**{**JWT, **settings}),
    )
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("container")


@pytest.fixture(scope="module")
def https(out: Path) -> dict[str, Any]:
    return synth(out, {"container": "true", "certificateArn": CERT})


@pytest.fixture(scope="module")
def resources(https: dict[str, Any]) -> dict[str, Any]:
    return dict(https["Resources"])


def one(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = of_type(resources, kind)
    return found


def test_without_the_flag_nothing_container_related_is_synthesized(tmp_path: Path) -> None:
    for context in ({}, {"container": "false"}):
        template = synth(tmp_path, context)
        kinds = {r["Type"] for r in template["Resources"].values()}
        assert not [k for k in kinds if k.startswith(CONTAINER_TYPES)], kinds
        assert not [k for k in template.get("Outputs", {}) if k.startswith("Container")]


def test_the_task_runs_the_image_on_8080_as_non_root_with_the_health_check(
    resources: dict[str, Any],
) -> None:
    task = one(resources, "AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    (container,) = task["ContainerDefinitions"]
    assert "container-assets" in json.dumps(container["Image"])  # built from the Dockerfile
    assert container["PortMappings"][0]["ContainerPort"] == CONTAINER_PORT == 8080
    assert container["User"] == "10001"
    assert container["ReadonlyRootFilesystem"] is True
    assert container["HealthCheck"]["Command"] == ["CMD", *HEALTH_COMMAND]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_orders_cost_prices_the_task_size_that_is_deployed(resources: dict[str, Any]) -> None:
    from orders_aws.cost import Function

    task = one(resources, "AWS::ECS::TaskDefinition")
    priced = Function()
    assert int(task["Cpu"]) == priced.task_vcpu * 1024
    assert int(task["Memory"]) == priced.task_gb * 1024


def test_the_environment_names_the_table_and_the_jwt_settings_only(
    resources: dict[str, Any],
) -> None:
    task = one(resources, "AWS::ECS::TaskDefinition")
    env = {e["Name"]: e["Value"] for e in task["ContainerDefinitions"][0]["Environment"]}
    table = next(k for k, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table")
    assert env["ORDERS_LOCAL_TABLE"] == {"Ref": table}  # the stack's one table
    assert env["ORDERS_JWT_ISSUER"] == JWT["jwt_issuer"]
    assert env["ORDERS_JWT_AUDIENCE"] == ",".join(JWT["jwt_audience"])
    assert "ORDERS_LOCAL_ALLOW_REMOTE" not in env
    known = cli_env_names() | {"AWS_REGION"}
    assert set(env) <= known, set(env) - known


def test_the_task_role_reads_and_writes_the_table_and_nothing_else(
    resources: dict[str, Any],
) -> None:
    task = one(resources, "AWS::ECS::TaskDefinition")
    role_id = task["TaskRoleArn"]["Fn::GetAtt"][0]
    policies = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    actions = {
        action
        for policy in policies
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    assert actions == {
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
    }
    for statement in statements(resources):
        acts = statement.get("Action", [])
        acts = [acts] if isinstance(acts, str) else acts
        if statement.get("Effect") == "Allow":
            assert not [a for a in acts if "*" in a], acts
    assert "events:PutEvents" not in json.dumps(policies)
    # ...and only on the stack's table and its indexes: a grant on "*" passed the above.
    (table_id,) = [k for k, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"]
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            targets = statement["Resource"]
            for target in [targets] if not isinstance(targets, list) else targets:
                assert target != "*"
                assert {"Fn::GetAtt": [table_id, "Arn"]} == target or (
                    "Fn::Join" in target
                    and {"Fn::GetAtt": [table_id, "Arn"]} in target["Fn::Join"][1]
                    and str(target["Fn::Join"][1][-1]).startswith("/index/")
                    and "*" not in str(target["Fn::Join"][1][-1])  # a named index
                ), target


def test_https_only_listener_with_the_certificate_and_targets_on_healthz(
    resources: dict[str, Any],
) -> None:
    (listener,) = of_type(resources, "AWS::ElasticLoadBalancingV2::Listener")
    assert listener["Protocol"] == "HTTPS"
    assert listener["Port"] == 443
    assert listener["Certificates"] == [{"CertificateArn": CERT}]
    assert listener["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    alb = one(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == "internet-facing"
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    group = one(resources, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert group["Port"] == 8080
    assert group["TargetType"] == "ip"
    assert group["HealthCheckPath"] == "/healthz"
    # Only the load balancer reaches the tasks, and only on the container port.
    ingress = of_type(resources, "AWS::EC2::SecurityGroupIngress")
    to_tasks = [i for i in ingress if i.get("FromPort") == 8080]
    assert to_tasks
    assert all("SourceSecurityGroupId" in i for i in to_tasks)


def test_without_a_certificate_plain_http_is_warned_and_tagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = synth(tmp_path, {"container": "true"})
    assert HTTP_WARNING in capsys.readouterr().err
    (listener,) = of_type(template["Resources"], "AWS::ElasticLoadBalancingV2::Listener")
    assert listener["Protocol"] == "HTTP"
    assert listener["Port"] == 80
    alb = one(template["Resources"], "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert {"Key": "listener", "Value": "http"} in alb["Tags"]


def test_alarms_on_5xx_response_time_and_unhealthy_hosts(resources: dict[str, Any]) -> None:
    alarms = [
        a
        for a in of_type(resources, "AWS::CloudWatch::Alarm")
        if a.get("Namespace") == "AWS/ApplicationELB"
    ]
    names = sorted(a["MetricName"] for a in alarms)
    assert names == [
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
        "TargetResponseTime",
        "UnHealthyHostCount",
    ]
    assert all(a["AlarmActions"] for a in alarms)  # the stack's alert topic


def test_the_service_autoscales_on_cpu_in_private_subnets(resources: dict[str, Any]) -> None:
    service = one(resources, "AWS::ECS::Service")
    assert service["LaunchType"] == "FARGATE"
    assert service["DesiredCount"] == 2
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"] is True
    policy = one(resources, "AWS::ApplicationAutoScaling::ScalingPolicy")
    spec = policy["TargetTrackingScalingPolicyConfiguration"]
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "ECSServiceAverageCPUUtilization"
    )


def test_every_taggable_container_resource_carries_the_tags(resources: dict[str, Any]) -> None:
    checked = 0
    for name, resource in resources.items():
        tags = resource.get("Properties", {}).get("Tags")
        if not resource["Type"].startswith(CONTAINER_TYPES) or tags is None:
            continue
        pairs = {(t["Key"], t["Value"]) for t in tags}
        assert PROJECT_TAG in pairs, name
        assert ("component", "container") in pairs, name
        checked += 1
    assert checked >= 4


def test_an_image_uri_from_context_replaces_the_build(tmp_path: Path) -> None:
    uri = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders-core:0.1.0"
    template = synth(tmp_path, {"container": "true", "containerImage": uri}, auth="none")
    task = one(template["Resources"], "AWS::ECS::TaskDefinition")
    container = task["ContainerDefinitions"][0]
    assert container["Image"] == uri
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["ORDERS_LOCAL_ALLOW_REMOTE"] == "1"  # auth=none: the loud opt-out
    assert "ORDERS_JWT_ISSUER" not in env


def test_auth_iam_has_no_container_equivalent(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="auth=iam"):
        synth(tmp_path, {"container": "true"}, auth="iam")


def test_the_staged_image_context_holds_only_what_the_build_needs(
    out: Path, https: dict[str, Any]
) -> None:
    manifest = json.loads((out / "out" / "OrdersCore-test.assets.json").read_text())
    ((_, image),) = manifest["dockerImages"].items()
    staged = out / "out" / image["source"]["directory"]
    assert image["source"]["dockerFile"] == "deploy/container/Dockerfile"
    assert (staged / "deploy/container/Dockerfile").is_file()
    assert (staged / "deploy/container/Dockerfile.dockerignore").is_file()
    assert (staged / "pyproject.toml").is_file()
    assert (staged / "src/orders_core/edges/http.py").is_file()
    for absent in (".git", ".nox", ".venv", "tests", "bench", "deploy/aws"):
        assert not (staged / absent).exists(), absent


def test_cfn_lint_passes_with_the_container(https: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(https))
    result = subprocess.run(
        [cfn_lint(), "--ignore-checks", "W3005", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
