"""Shared by the peer handlers: the request model, the event, a Lambda context."""

from __future__ import annotations

from pydantic import BaseModel, Field

BODY = '{"items":[{"id":"sku-1","qty":2},{"id":"sku-2","qty":1},{"id":"sku-3","qty":5}]}'


class Item(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=10_000)


class CreateOrder(BaseModel):
    items: list[Item] = Field(min_length=1, max_length=100)
    customerId: str | None = None  # noqa: N815 - the wire name


def event() -> dict[str, object]:
    """An API Gateway HTTP API (payload 2.0) POST /orders."""
    return {
        "version": "2.0",
        "routeKey": "POST /orders",
        "rawPath": "/orders",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {
                "method": "POST",
                "path": "/orders",
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "bench",
            },
            "requestId": "req",
            "routeKey": "POST /orders",
            "stage": "$default",
            "time": "30/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_800_000_000_000,
        },
        "body": BODY,
        "isBase64Encoded": False,
    }


class Context:
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000
