"""Shared by the peer handlers: the request model, the work each does (one conditional
PutItem, one JSON log line), the event and a Lambda context. The work is written once here
so every style does exactly the same; each peer keeps its own framework's way around it."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from typing import Any

from pydantic import BaseModel, Field

TABLE = os.environ.get("ORDERS_TABLE", "orders")

BODY = '{"items":[{"id":"sku-1","qty":2},{"id":"sku-2","qty":1},{"id":"sku-3","qty":5}]}'


class Item(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=10_000)


class CreateOrder(BaseModel):
    items: list[Item] = Field(min_length=1, max_length=100)
    customerId: str | None = None  # noqa: N815 - the wire name


def put_order(client: Any, order: CreateOrder) -> tuple[str, str]:
    """Store a new PENDING order with one conditional PutItem; returns (id, JSON body)."""
    order_id = uuid.uuid4().hex
    body = json.dumps(
        {"orderId": order_id, "status": "PENDING", "items": [i.model_dump() for i in order.items]}
    )
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "ORDER"}, "body": {"S": body}},
        ConditionExpression="attribute_not_exists(pk)",
    )
    return order_id, body


def json_line_logger(name: str) -> logging.Logger:
    """A logger writing one JSON line per record to stdout, as a hand-rolled handler would."""
    log = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter('{"level":"%(levelname)s","message":"%(message)s"}'))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


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
