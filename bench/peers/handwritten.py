"""The hand-written handler: json + a pydantic model + a boto3 DynamoDB client at init."""

from __future__ import annotations

import os

import boto3
from bench.peers.common import CreateOrder, json_line_logger, put_order

log = json_line_logger("handwritten")
client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))


def handler(event: dict, context: object) -> dict:  # type: ignore[type-arg]
    try:
        order = CreateOrder.model_validate_json(event.get("body") or "")
    except ValueError:
        return {"statusCode": 422, "body": '{"message":"invalid"}'}
    order_id, body = put_order(client, order)
    log.info("order created %s", order_id)
    return {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": body}
