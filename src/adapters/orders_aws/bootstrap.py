"""Composition root of the Lambda functions: configuration from the environment, built once.

Each trigger module's ``handler`` asks :func:`runtime` for it; the trigger module Lambda
loads as the function's handler (``_HANDLER``) builds it at import, in the init phase, so
warm invocations reuse the store, the botocore clients and the validators, and importing a
trigger module anywhere else (tests, another function) builds nothing. Building does no
network I/O. Environment variables:

=================================  =========================================================
``ORDERS_TABLE``                   DynamoDB table name (required)
``ORDERS_EVENT_BUS``               EventBridge bus the relay publishes to (``default``)
``ORDERS_EVENT_SOURCE``            CloudEvent ``source`` of domain events
                                   (``urn:orders-core:orders``)
``ORDERS_IDEMPOTENCY_TTL_SECONDS`` how long idempotency records live (86400)
``ORDERS_MAX_BODY_BYTES``          largest HTTP body (65536)
``ORDERS_DEADLINE_MARGIN_MS``      time kept back from the Lambda's remaining time (500)
``ORDERS_POISON_QUEUE_URL``        optional SQS queue for commands that can never succeed
``ORDERS_COMMAND_BUS``             EventBridge bus commands arrive on: their principal
                                   (``default``)
``ORDERS_ADMIN_SCOPE``             JWT scope granting access to every order
                                   (``orders:admin``)
``ORDERS_ADMIN_ROLE_ARNS``         comma-separated IAM user/role ARNs that are admins
``ORDERS_IAM_SHARED_ROLES``        comma-separated roles whose sessions are one principal
``ORDERS_AUTHORIZER_PRINCIPAL_KEY`` Lambda authorizer context key naming the caller
                                   (``principalId``)
``ORDERS_AUTHORIZER_ADMIN_KEY``    Lambda authorizer context key that grants admin when
                                   true (``admin``)
``ORDERS_EVENTS_DLQ_URL``          relay: SQS queue for events that can never be
                                   published, as CloudEvents (none: left on the stream)
``ORDERS_RELAY_GIVE_UP_SECONDS``   relay: age after which a retryable publish failure is
                                   dead-lettered (18000)
``AWS_ENDPOINT_URL_DYNAMODB``      (boto3's own) a DynamoDB endpoint, e.g. DynamoDB Local
=================================  =========================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from orders_aws.shapes import AuthSettings
from orders_aws.table import DESIGN, TableDesign
from orders_core.application import DEFAULT_ADMIN_SCOPE, Deadline, OrderService, admin_arns
from orders_core.domain import DEFAULT_SOURCE
from orders_core.edges.http import DEFAULT_MAX_BODY, HttpApi
from orders_core.edges.numbers import ascii_int

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient

    from orders_aws.publisher import EventBridgePublisher


DEFAULT_GIVE_UP_SECONDS: Final = 5 * 3600
"""Below the relay's event source mapping's maximum record age, itself below the stream's
24 h retention: the relay dead-letters an event with its content before Lambda drops it."""


class ConfigError(RuntimeError):
    """A required setting is missing or malformed (fails the init phase, loudly)."""


@dataclass(frozen=True)
class AwsConfig:
    table: str
    event_bus: str = "default"
    event_source: str = DEFAULT_SOURCE
    idempotency_ttl: timedelta = timedelta(hours=24)
    max_body: int = DEFAULT_MAX_BODY
    deadline_margin_ms: int = 500
    poison_queue_url: str | None = None
    command_bus: str = "default"
    auth: AuthSettings = field(default_factory=AuthSettings)
    events_dlq_url: str | None = None
    relay_give_up_seconds: float = DEFAULT_GIVE_UP_SECONDS

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AwsConfig:
        env = dict(os.environ if env is None else env)
        table = env.get("ORDERS_TABLE", "")
        if not table:
            raise ConfigError("ORDERS_TABLE is not set")
        return cls(
            table=table,
            event_bus=env.get("ORDERS_EVENT_BUS", "default"),
            event_source=env.get("ORDERS_EVENT_SOURCE", DEFAULT_SOURCE),
            idempotency_ttl=timedelta(
                seconds=_setting(env, "ORDERS_IDEMPOTENCY_TTL_SECONDS", 86400, minimum=1)
            ),
            max_body=_setting(env, "ORDERS_MAX_BODY_BYTES", DEFAULT_MAX_BODY, minimum=1),
            deadline_margin_ms=_setting(env, "ORDERS_DEADLINE_MARGIN_MS", 500, minimum=0),
            poison_queue_url=env.get("ORDERS_POISON_QUEUE_URL") or None,
            command_bus=env.get("ORDERS_COMMAND_BUS") or "default",
            auth=AuthSettings(
                admin_scope=env.get("ORDERS_ADMIN_SCOPE") or DEFAULT_ADMIN_SCOPE,
                admin_arns=admin_arns(env.get("ORDERS_ADMIN_ROLE_ARNS", "")),
                shared_roles=admin_arns(env.get("ORDERS_IAM_SHARED_ROLES", "")),
                principal_key=env.get("ORDERS_AUTHORIZER_PRINCIPAL_KEY") or "principalId",
                admin_key=env.get("ORDERS_AUTHORIZER_ADMIN_KEY") or "admin",
            ),
            events_dlq_url=env.get("ORDERS_EVENTS_DLQ_URL") or None,
            relay_give_up_seconds=_setting(
                env, "ORDERS_RELAY_GIVE_UP_SECONDS", DEFAULT_GIVE_UP_SECONDS, minimum=0
            ),
        )


def _setting(env: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    """An integer setting, ASCII digits only (``int()`` would take "1_000"
    and Arabic-Indic digits)."""
    text = env.get(name)
    if text is None:
        return default
    value = ascii_int(text)
    if value is None or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}, not {text!r}")
    return value


@dataclass
class Runtime:
    """What the handlers share. Clients other than DynamoDB's are created on first use."""

    config: AwsConfig
    service: OrderService
    api: HttpApi
    dynamodb: DynamoDBClient
    design: TableDesign = DESIGN
    _clients: dict[str, Any] = field(default_factory=dict)

    def deadline(self, context: Any) -> Deadline:
        """The invocation's remaining time, less a margin to answer in."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return Deadline.after(30.0)
        return Deadline.after((remaining() - self.config.deadline_margin_ms) / 1000)

    def events(self) -> EventBridgeClient:
        if "events" not in self._clients:
            self._clients["events"] = _client("events")
        return self._clients["events"]  # type: ignore[no-any-return]

    def sqs(self) -> SQSClient:
        if "sqs" not in self._clients:
            self._clients["sqs"] = _client("sqs")
        return self._clients["sqs"]  # type: ignore[no-any-return]

    def publisher(self) -> EventBridgePublisher:
        """The relay's publisher to the configured bus (over :meth:`events`' client)."""
        from orders_aws.publisher import EventBridgePublisher

        return EventBridgePublisher(self.events(), self.config.event_bus)


def _client(service: str) -> Any:
    from orders_aws.clients import client

    return client(service)


def build(config: AwsConfig, dynamodb: DynamoDBClient | None = None) -> Runtime:
    from orders_aws.clients import make_client
    from orders_aws.dynamodb import DynamoDBStore

    client = dynamodb if dynamodb is not None else make_client()
    store = DynamoDBStore(config.table, client)
    service = OrderService(
        store, idempotency_ttl=config.idempotency_ttl, source=config.event_source
    )
    api = HttpApi(service, max_body=config.max_body)
    return Runtime(config, service, api, client, store.design)


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    """The process's runtime, built from the environment on first call."""
    global _RUNTIME
    if _RUNTIME is None:
        from orders_aws import logs
        from orders_core.telemetry import setup

        logs.configure()
        setup.configure(os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "orders-aws"))
        _RUNTIME = build(AwsConfig.from_env())
    return _RUNTIME


def current() -> Runtime | None:
    """The process's runtime if built, without building it."""
    return _RUNTIME


def build_if_entrypoint(module: str) -> None:
    """Build the runtime now if Lambda is loading ``module`` as the function's handler.

    Lambda names the handler in ``_HANDLER`` (``orders_aws.apigw.handler``) and runs the
    import in its init phase, which is where building belongs (before the first request,
    at full CPU). Anywhere else the import builds nothing: ``handler`` builds on first call.
    """
    if os.environ.get("_HANDLER", "").rpartition(".")[0] == module:
        runtime()


def reset() -> None:
    """Forget the process's runtime (tests change the environment between cases)."""
    global _RUNTIME
    _RUNTIME = None
