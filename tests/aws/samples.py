"""Lambda event shapes as AWS documents them, trimmed to one record each and parametrised."""

from __future__ import annotations

import base64
import json
from typing import Any


def apigw_v2(
    method: str = "POST",
    path: str = "/orders",
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
    base64_body: bool = False,
    claims: dict[str, str] | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event. ``claims`` is a JWT authorizer's
    output; ``authorizer`` any other ``requestContext.authorizer`` (see below)."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": ["cookie1", "cookie2"],
        "headers": {
            "accept": "*/*",
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "curl/8.5.0",
            "x-amzn-trace-id": "Root=1-5e272390-8c398be037738dc042009320",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "10/Mar/2026:00:03:59 +0000",
            "timeEpoch": 1_772_000_000_000,
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event


def iam_authorizer(user_arn: str, account: str = "111122223333") -> dict[str, Any]:
    """``requestContext.authorizer`` of an IAM-authorized (SigV4) HTTP API route, as in
    AWS's payload format 2.0 example and Powertools' ``apiGatewayProxyV2IamEvent.json``."""
    return {
        "iam": {
            "accessKey": "ASIAIOSFODNN7EXAMPLE",
            "accountId": account,
            "callerId": "AIDACKCEVSQ6C2EXAMPLE",
            "cognitoIdentity": None,
            "principalOrgId": "o-abcdefghij",
            "userArn": user_arn,
            "userId": "AIDACOSFODNN7EXAMPLE2",
        }
    }


def lambda_authorizer(context: dict[str, Any]) -> dict[str, Any]:
    """A Lambda authorizer's (simple response) ``context``, as HTTP API passes it on."""
    return {"lambda": context}


def sqs_record(
    body: str,
    message_id: str = "059f36b4-87a3-44ab-83d2-661975830a7d",
    *,
    fifo: bool = False,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    queue = "orders-commands.fifo" if fifo else "orders-commands"
    return {
        "messageId": message_id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185",
        },
        "messageAttributes": {
            k: {
                "stringValue": v,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
            for k, v in (attributes or {}).items()
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
        "awsRegion": "us-east-1",
    }


def command_event(
    type_: str,
    data: dict[str, Any],
    event_id: str = "evt-1",
    source: str = "urn:test:client",
    **ext: str,
) -> str:
    return json.dumps(
        {"specversion": "1.0", "id": event_id, "source": source, "type": type_, "data": data, **ext}
    )


def eventbridge(
    detail: dict[str, Any],
    detail_type: str = "io.orderscore.order.create.v1",
    event_id: str = "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": "com.example.shop",
        "account": "123456789012",
        "time": "2026-11-30T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
