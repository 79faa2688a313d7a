"""botocore clients for every AWS service the adapter calls (DynamoDB, SQS, EventBridge).

Built with botocore directly: ``import boto3`` also imports s3transfer, ~70 ms of a cold
start for nothing a low-level client uses (docs/decisions/0008-botocore-client-creation.md).
botocore itself is imported on the first client built, never by importing this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    read_timeout: float = 3,
    max_pool_connections: int = 10,
    validate_parameters: bool = True,
) -> Any:
    """A botocore client with our timeouts and the standard retry mode;
    ``max_pool_connections`` matches the threads that share it (botocore's default is 10:
    more threads would queue for a connection). ``validate_parameters=False`` skips
    botocore's client-side check of each call against the service model, which the
    service repeats anyway (decision 0008)."""
    from botocore.config import Config

    from orders_aws.botocore_session import session

    config = Config(
        connect_timeout=1,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": 3},
        tcp_keepalive=True,
        max_pool_connections=max_pool_connections,
        parameter_validation=validate_parameters,
    )
    return session().create_client(
        service,
        endpoint_url=endpoint_url,
        region_name=region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        config=config,
    )


def make_client(
    endpoint_url: str | None = None, region: str | None = None, max_pool_connections: int = 10
) -> DynamoDBClient:
    """The DynamoDB client: one per process, its read timeout inside a command's deadline.

    Without client-side parameter validation: every call it makes is built by
    :mod:`orders_aws.dynamodb` from fixed shapes, never from a caller's input, and the
    contract suite runs each shape against DynamoDB Local, which validates it; the check
    costs a share of every request's CPU (decision 0008).
    """
    return client(  # type: ignore[no-any-return]
        "dynamodb",
        endpoint_url=endpoint_url,
        region=region,
        read_timeout=2,
        max_pool_connections=max_pool_connections,
        validate_parameters=False,
    )
