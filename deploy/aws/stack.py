"""The orders-core stack: DynamoDB, Lambda, HTTP API, SQS, EventBridge, alarms and a budget.

Settings come from CDK context (``-c name=value``): see :mod:`deploy.aws.settings`.

Every route but ``GET /healthz`` and ``GET /openapi.json`` carries the authorizer, and so
does ``$default``: unmatched requests reach the function, which answers problem+json like
every other adapter (docs/decisions/0012-default-route.md).

Deploy-time parameters: ``BudgetAmount`` (USD per month) and ``AlertEmail``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from deploy.aws.settings import DEFAULT_ADMIN_SCOPE, StackSettings
from orders_aws.item_events import ORDER_PREFIX
from orders_aws.table import DESIGN
from orders_core.edges.http import ROUTES

PROJECT_TAG = ("project", "orders-core")
PUBLIC_ROUTES: Final = frozenset({("GET", "/healthz"), ("GET", "/openapi.json")})
"""Routes without an authorizer: load balancers and client generators call them anonymously."""
RELAY_MAX_RECORD_AGE: Final = cdk.Duration.hours(6)
"""Below the stream's 24 h retention, so what Lambda discards can still be read for 18 h."""
RELAY_GIVE_UP: Final = cdk.Duration.hours(5)
"""The relay dead-letters an event (with its content) before Lambda would discard it."""
NONE_WARNING: Final = (
    "warning: auth=none: the HTTP API has NO authorizer; anyone who finds the URL can create, "
    "read and change orders. The stack is tagged auth=none."
)


class OrdersStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        settings: StackSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        stage = settings.stage
        cdk.Tags.of(self).add(*PROJECT_TAG)
        cdk.Tags.of(self).add("stage", stage)
        cdk.Tags.of(self).add("auth", settings.auth)
        if settings.auth == "none":
            print(NONE_WARNING, file=sys.stderr)
            cdk.Annotations.of(self).add_warning_v2("orders-core:auth-none", NONE_WARNING)

        budget_amount = cdk.CfnParameter(
            self,
            "BudgetAmount",
            type="Number",
            default=50,
            min_value=1,
            description="Monthly cost budget in USD for resources tagged project=orders-core",
        )
        alert_email = cdk.CfnParameter(
            self,
            "AlertEmail",
            type="String",
            allowed_pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
            description="Where alarms and budget alerts are sent",
        )

        # -- state ----------------------------------------------------------------------
        self.table = dynamodb.Table(
            self,
            "Orders",
            partition_key=_string(DESIGN.partition_key),
            sort_key=_string(DESIGN.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            stream=dynamodb.StreamViewType.NEW_IMAGE,
            time_to_live_attribute=DESIGN.ttl_attribute,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=DESIGN.customer_index,
            partition_key=_string(DESIGN.customer_partition_key),
            sort_key=_string(DESIGN.customer_sort_key),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"orders-{stage}")

        # -- functions --------------------------------------------------------------------
        environment = {
            "ORDERS_TABLE": self.table.table_name,
            "ORDERS_EVENT_BUS": self.bus.event_bus_name,
        }
        self.http_fn = self._function(
            "Http",
            "orders_aws.apigw.handler",
            code,
            environment,
            reserved=settings.reserved_concurrency,
        )
        self.queue_fn = self._function("Queue", "orders_aws.sqs.handler", code, environment)
        self.relay_fn = self._function(
            "Relay", "orders_aws.stream.handler", code, environment, timeout=60
        )
        self.http_fn.add_environment("ORDERS_AUTH_MODE", settings.auth)
        if settings.admin_scope != DEFAULT_ADMIN_SCOPE:
            self.http_fn.add_environment("ORDERS_ADMIN_SCOPE", settings.admin_scope)
        if settings.admin_role_arns:
            self.http_fn.add_environment(
                "ORDERS_ADMIN_ROLE_ARNS", ",".join(settings.admin_role_arns)
            )
        for fn in (self.http_fn, self.queue_fn):
            self._grant_table(fn)
        self.bus.grant_put_events_to(self.relay_fn)

        # -- HTTP API ---------------------------------------------------------------------
        target: lambda_.IFunction = self.http_fn
        if settings.provisioned > 0:
            target = lambda_.Alias(
                self,
                "HttpLive",
                alias_name="live",
                version=self.http_fn.current_version,
                provisioned_concurrent_executions=settings.provisioned,
            )
        integration = integrations.HttpLambdaIntegration("HttpIntegration", target)
        authorizer: apigw.IHttpRouteAuthorizer | None = None
        if settings.auth == "jwt":
            authorizer = authorizers.HttpJwtAuthorizer(
                "JwtAuthorizer",
                settings.jwt_issuer,
                jwt_audience=list(settings.jwt_audience),
                identity_source=["$request.header.Authorization"],
            )
        elif settings.auth == "iam":
            authorizer = authorizers.HttpIamAuthorizer()
        # $default (unmatched method or path) goes to the function, behind the authorizer:
        # problem+json 404/405 like every adapter (docs/decisions/0012-default-route.md).
        self.api = apigw.HttpApi(
            self,
            "Api",
            api_name=f"orders-{stage}",
            default_integration=integration,
            default_authorizer=authorizer,
        )
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        stage_resource = self.api.default_stage.node.default_child  # type: ignore[union-attr]
        stage_resource.add_property_override(
            "AccessLogSettings",
            {  # type: ignore[union-attr]
                "DestinationArn": access_logs.log_group_arn,
                # No request bodies, no query strings: ids, status and timings only.
                "Format": json.dumps(
                    {
                        "requestId": "$context.requestId",
                        "routeKey": "$context.routeKey",
                        "status": "$context.status",
                        "latencyMs": "$context.responseLatency",
                        "integrationLatencyMs": "$context.integrationLatency",
                        "sourceIp": "$context.identity.sourceIp",
                        "authorizerError": "$context.authorizer.error",
                    }
                ),
            },
        )
        # One budget for all callers of the stage (API Gateway HTTP APIs have no per-client
        # limits): enough for a small production load, far below the account's 10,000 rps.
        stage_resource.add_property_override(
            "DefaultRouteSettings",
            {
                "ThrottlingRateLimit": settings.throttle_rate,
                "ThrottlingBurstLimit": settings.throttle_burst,
            },
        )
        for route in ROUTES:
            public = (route.method, route.template) in PUBLIC_ROUTES
            self.api.add_routes(
                path=route.template,
                methods=[apigw.HttpMethod(route.method)],
                integration=integration,
                authorizer=apigw.HttpNoneAuthorizer() if public else authorizer,
            )

        # -- commands queue ---------------------------------------------------------------
        self.commands_dlq = self._dead_letter_queue("CommandsDlq")
        self.commands = sqs.Queue(
            self,
            "Commands",
            visibility_timeout=cdk.Duration.seconds(60),  # >= 6x the function timeout / batch
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.commands_dlq),
        )
        self.queue_fn.add_event_source(
            sources.SqsEventSource(
                self.commands,
                batch_size=10,
                report_batch_item_failures=True,
            )
        )
        self.queue_fn.add_environment("ORDERS_POISON_QUEUE_URL", self.commands_dlq.queue_url)
        self.commands_dlq.grant_send_messages(self.queue_fn)

        # -- relay on the stream ----------------------------------------------------------
        self.relay_dlq = self._dead_letter_queue("RelayDlq")  # Lambda's batch metadata
        self.events_dlq = self._dead_letter_queue("EventsDlq")  # the events themselves
        self.relay_fn.add_environment("ORDERS_EVENTS_DLQ_URL", self.events_dlq.queue_url)
        self.relay_fn.add_environment(
            "ORDERS_RELAY_GIVE_UP_SECONDS", str(int(RELAY_GIVE_UP.to_seconds()))
        )
        self.events_dlq.grant_send_messages(self.relay_fn)
        self.relay_fn.add_event_source(
            sources.DynamoEventSource(
                self.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                bisect_batch_on_error=True,
                # No retry cap: an EventBridge outage is waited out in order, and the relay
                # dead-letters events with their content at 5 h, before this age discards them.
                max_record_age=RELAY_MAX_RECORD_AGE,
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(self.relay_dlq),
                # Only order writes carry events: TTL deletions and the cursor secret never
                # invoke the relay (fewer invocations, lower cost). A keyed transition's
                # record item shares the order prefix; it carries no events and the relay
                # skips it.
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                            "dynamodb": {
                                "Keys": {
                                    DESIGN.partition_key: {
                                        "S": lambda_.FilterRule.begins_with(ORDER_PREFIX)
                                    }
                                }
                            },
                        }
                    )
                ],
            )
        )

        # -- alarms and budget ------------------------------------------------------------
        topic = sns.Topic(self, "Alerts", enforce_ssl=True)
        topic.add_subscription(subscriptions.EmailSubscription(alert_email.value_as_string))
        alarm_action = actions.SnsAction(topic)
        for name, fn in (
            ("Http", self.http_fn),
            ("Queue", self.queue_fn),
            ("Relay", self.relay_fn),
        ):
            for suffix, metric, threshold in (
                ("Errors", fn.metric_errors(period=cdk.Duration.minutes(5)), 1),
                ("Throttles", fn.metric_throttles(period=cdk.Duration.minutes(5)), 1),
                (
                    "DurationP95",
                    fn.metric_duration(statistic="p95", period=cdk.Duration.minutes(5)),
                    fn.timeout.to_milliseconds() * 0.8 if fn.timeout else 8000,
                ),
            ):
                alarm = cloudwatch.Alarm(
                    self,
                    f"{name}{suffix}",
                    metric=metric,
                    threshold=threshold,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
                alarm.add_alarm_action(alarm_action)
        for name, queue in (
            ("CommandsDlqDepth", self.commands_dlq),
            ("RelayDlqDepth", self.relay_dlq),
            ("EventsDlqDepth", self.events_dlq),
        ):
            alarm = cloudwatch.Alarm(
                self,
                name,
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=cdk.Duration.minutes(5)
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(alarm_action)

        budgets.CfnBudget(
            self,
            "MonthlyBudget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(
                    amount=budget_amount.value_as_number, unit="USD"
                ),
                # The tag must be activated as a cost allocation tag in Billing first.
                cost_filters={"TagKeyValue": [f"user:{PROJECT_TAG[0]}${PROJECT_TAG[1]}"]},
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        comparison_operator="GREATER_THAN",
                        notification_type=kind,
                        threshold=threshold,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[
                        budgets.CfnBudget.SubscriberProperty(
                            address=alert_email.value_as_string,
                            subscription_type="EMAIL",
                        )
                    ],
                )
                for kind, threshold in (("ACTUAL", 80), ("FORECASTED", 100))
            ],
        )

        cdk.CfnOutput(self, "ApiEndpoint", value=self.api.api_endpoint)
        cdk.CfnOutput(self, "TableName", value=self.table.table_name)
        cdk.CfnOutput(self, "EventBusName", value=self.bus.event_bus_name)
        cdk.CfnOutput(self, "CommandsQueueUrl", value=self.commands.queue_url)
        cdk.CfnOutput(self, "EventsDlqUrl", value=self.events_dlq.queue_url)

        from deploy.aws.container import add_container_service  # -c container=true

        self.container = add_container_service(
            self, table=self.table, settings=settings, alarm_action=alarm_action
        )

    def _function(
        self,
        name: str,
        handler: str,
        code: lambda_.Code,
        environment: dict[str, str],
        *,
        timeout: int = 10,
        reserved: int | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        return lambda_.Function(
            self,
            name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=(
                lambda_.Architecture.ARM_64
                if self.settings.architecture == "arm64"
                else lambda_.Architecture.X86_64
            ),
            handler=handler,
            code=code,
            memory_size=self.settings.memory,
            timeout=cdk.Duration.seconds(timeout),
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=log_group,
            reserved_concurrent_executions=reserved,
            environment=environment,
        )

    def _dead_letter_queue(self, construct_id: str) -> sqs.Queue:
        """A DLQ kept 14 days (the SQS maximum), encrypted, TLS only."""
        return sqs.Queue(
            self,
            construct_id,
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )

    def _grant_table(self, fn: lambda_.Function) -> None:
        """Exactly the calls the store makes, on the table and its one index."""
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "dynamodb:ConditionCheckItem",
                ],
                resources=[
                    self.table.table_arn,
                    f"{self.table.table_arn}/index/{DESIGN.customer_index}",
                ],
            )
        )


def _string(name: str) -> dynamodb.Attribute:
    """A string key attribute of the table (names from :data:`orders_aws.table.DESIGN`)."""
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
