"""An optional Fargate service behind an ALB, on the stack's table: ``cdk synth -c container=true``.

The image is deploy/container/Dockerfile (``orders-local serve --store dynamodb``), built by
``cdk deploy`` as an asset, or an image you pushed (``-c containerImage=URI``). Everything
the container learns comes from environment variables. It writes orders to the same table as
the functions; events still leave through the table's stream and the relay function, so the
task role can read and write the table and nothing else (no ``events:PutEvents``).

=======================  =========================  ======================================
context key              default                    meaning
=======================  =========================  ======================================
``container``            (off)                      ``true`` adds everything below
``containerImage``       (build the Dockerfile)     an image URI to run instead
``certificateArn``       (none: HTTP, warned)       ACM certificate: an HTTPS-only listener
``containerCpu``         ``512``                    task CPU units (1024 = 1 vCPU)
``containerMemory``      ``1024``                   task memory, MiB
``containerCount``       ``2``                      tasks at least (autoscaled on CPU)
``containerMaxCount``    ``10``                     tasks at most
=======================  =========================  ======================================

Authentication follows the stack's ``auth``: ``jwt`` gives the container the same issuer
and audience (it verifies tokens itself); ``none`` sets ``ORDERS_LOCAL_ALLOW_REMOTE=1``
(loud, like the API's); ``iam`` (SigV4) is API Gateway's and has no container equivalent.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from orders_aws.dynamodb import DESIGN

if TYPE_CHECKING:
    from deploy.aws.settings import StackSettings

ROOT: Final = Path(__file__).resolve().parents[2]
DOCKERFILE: Final = "deploy/container/Dockerfile"
CONTAINER_PORT: Final = 8080
USER: Final = "10001"
HEALTH_COMMAND: Final = (
    "python",
    "-c",
    "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)",
)
"""The Dockerfile's HEALTHCHECK (a test keeps them equal); the slim image has no curl."""
TABLE_ACTIONS: Final = (
    "dynamodb:DescribeTable",  # the store checks the table once at start
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
HTTP_WARNING: Final = (
    "warning: container=true without certificateArn: the load balancer listens on plain HTTP "
    "(port 80); bearer tokens and orders cross the internet unencrypted. Pass "
    "-c certificateArn=arn:aws:acm:... for an HTTPS-only listener."
)


def enabled(node: Any) -> bool:
    """``-c container=true`` (a string) or ``"container": true`` in cdk.json."""
    return str(node.try_get_context("container") or "").lower() in {"true", "1", "yes"}


def add_container_service(
    stack: cdk.Stack,
    *,
    table: dynamodb.ITable,
    settings: StackSettings,
    alarm_action: cloudwatch.IAlarmAction,
) -> ContainerService | None:
    """The stack's hook: the service when the context asks for it, else nothing at all."""
    if not enabled(stack.node):
        return None
    return ContainerService(
        stack, "Container", table=table, settings=settings, alarm_action=alarm_action
    )


def _context_int(node: Any, key: str, default: int) -> int:
    value = node.try_get_context(key)
    return default if value is None else int(value)


def _image(node: Any, architecture: str) -> ecs.ContainerImage:
    uri = node.try_get_context("containerImage")
    if uri:
        return ecs.ContainerImage.from_registry(str(uri))
    ignore = (ROOT / "deploy/container/Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.lstrip().startswith("#")]
    return ecs.ContainerImage.from_asset(
        str(ROOT),
        file=DOCKERFILE,
        # The same allowlist docker uses, plus the two files the build reads from the copy.
        exclude=[*patterns, f"!{DOCKERFILE}", f"!{DOCKERFILE}.dockerignore"],
        ignore_mode=cdk.IgnoreMode.DOCKER,
        platform=(
            ecr_assets.Platform.LINUX_ARM64
            if architecture == "arm64"
            else ecr_assets.Platform.LINUX_AMD64
        ),
    )


class ContainerService(Construct):
    """VPC, cluster, task definition, Fargate service, ALB, autoscaling and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        settings: StackSettings,
        alarm_action: cloudwatch.IAlarmAction,
    ) -> None:
        super().__init__(scope, construct_id)
        node = self.node
        cdk.Tags.of(self).add("component", "container")
        if settings.auth == "iam":
            from deploy.aws.settings import SettingsError

            raise SettingsError(
                "container=true with auth=iam: SigV4 is API Gateway's; the container verifies "
                "JWTs itself (-c auth=jwt) or runs without authentication (-c auth=none)"
            )
        certificate = node.try_get_context("certificateArn")

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,  # image pulls and logs; DynamoDB goes through the free endpoint
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                )
            },
        )
        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=_context_int(node, "containerCpu", 512),
            memory_limit_mib=_context_int(node, "containerMemory", 1024),
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=(
                    ecs.CpuArchitecture.ARM64
                    if settings.architecture == "arm64"
                    else ecs.CpuArchitecture.X86_64
                ),
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_definition.add_to_task_role_policy(
            iam.PolicyStatement(
                actions=list(TABLE_ACTIONS),
                resources=[table.table_arn, f"{table.table_arn}/index/{DESIGN.customer_index}"],
            )
        )
        environment = {
            "ORDERS_LOCAL_TABLE": table.table_name,
            "AWS_REGION": cdk.Stack.of(self).region,
        }
        if settings.auth == "jwt":
            environment["ORDERS_JWT_ISSUER"] = settings.jwt_issuer
            environment["ORDERS_JWT_AUDIENCE"] = ",".join(settings.jwt_audience)
            environment["ORDERS_ADMIN_SCOPE"] = settings.admin_scope
        else:  # auth=none: the stack already warned and tagged it
            environment["ORDERS_LOCAL_ALLOW_REMOTE"] = "1"
        self.container = self.task_definition.add_container(
            "orders",
            image=_image(node, settings.architecture),
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, name="http")],
            environment=environment,
            user=USER,
            readonly_root_filesystem=True,
            stop_timeout=cdk.Duration.seconds(30),  # > the handler deadline (10 s)
            health_check=ecs.HealthCheck(
                command=["CMD", *HEALTH_COMMAND],
                interval=cdk.Duration.seconds(10),
                timeout=cdk.Duration.seconds(3),
                retries=3,
                start_period=cdk.Duration.seconds(10),
            ),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="orders",
                log_group=logs.LogGroup(
                    self,
                    "Logs",
                    retention=logs.RetentionDays.ONE_MONTH,
                    removal_policy=cdk.RemovalPolicy.DESTROY,
                ),
            ),
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            desired_count=_context_int(node, "containerCount", 2),
            min_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=_context_int(node, "containerCount", 2),
            max_capacity=_context_int(node, "containerMaxCount", 10),
        )
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=60)

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=self.vpc,
            internet_facing=True,
            drop_invalid_header_fields=True,
        )
        if certificate:
            listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(str(certificate))],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            )
            scheme = "https"
        else:
            print(HTTP_WARNING, file=sys.stderr)
            cdk.Annotations.of(self).add_warning_v2("orders-core:container-http", HTTP_WARNING)
            cdk.Tags.of(self).add("listener", "http")
            listener = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP
            )
            scheme = "http"
        self.target_group = listener.add_targets(
            "Tasks",
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            deregistration_delay=cdk.Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path="/healthz",
                healthy_http_codes="200",
                interval=cdk.Duration.seconds(10),
                timeout=cdk.Duration.seconds(3),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )

        five_minutes = cdk.Duration.minutes(5)
        for name, metric, threshold in (
            (
                "Target5xx",
                self.load_balancer.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five_minutes
                ),
                5,
            ),
            (
                "Elb5xx",
                self.load_balancer.metrics.http_code_elb(
                    elbv2.HttpCodeElb.ELB_5XX_COUNT, period=five_minutes
                ),
                5,
            ),
            (
                "ResponseTimeP99",
                self.target_group.metrics.target_response_time(
                    statistic="p99", period=five_minutes
                ),
                1.0,  # seconds
            ),
            (
                "UnhealthyHosts",
                self.target_group.metrics.unhealthy_host_count(
                    statistic="Maximum", period=cdk.Duration.minutes(1)
                ),
                1,
            ),
        ):
            alarm = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1 if name != "UnhealthyHosts" else 3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(alarm_action)

        cdk.CfnOutput(
            self,
            "Url",
            value=f"{scheme}://{self.load_balancer.load_balancer_dns_name}",
            description="the container service behind its load balancer",
        )
