"""The hand-written handler: json + a pydantic model + a boto3 DynamoDB client at init."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid

import boto3
from bench.peers.common import CreateOrder

log = logging.getLogger("handwritten")
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(logging.Formatter('{"level":"%(levelname)s","message":"%(message)s"}'))
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False

TABLE = os.environ.get("ORDERS_TABLE", "orders")
client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))


def handler(event: dict, context: object) -> dict:  # type: ignore[type-arg]
    try:
        order = CreateOrder.model_validate_json(event.get("body") or "")
    except ValueError:
        return {"statusCode": 422, "body": '{"message":"invalid"}'}
    order_id = uuid.uuid4().hex
    body = json.dumps(
        {"orderId": order_id, "status": "PENDING", "items": [i.model_dump() for i in order.items]}
    )
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "ORDER"}, "body": {"S": body}},
        ConditionExpression="attribute_not_exists(pk)",
    )
    log.info("order created %s", order_id)
    return {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": body}
