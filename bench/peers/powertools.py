"""Powertools for AWS Lambda: APIGatewayHttpResolver + Logger, boto3 client at init."""

from __future__ import annotations

import os

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from bench.peers.common import CreateOrder, put_order

logger = Logger(service="orders")
app = APIGatewayHttpResolver()
client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))


@app.post("/orders")
def create() -> Response:  # type: ignore[type-arg]
    order = CreateOrder.model_validate_json(app.current_event.body or "")
    order_id, body = put_order(client, order)
    logger.info("order created", order_id=order_id)
    return Response(status_code=201, content_type="application/json", body=body)


def handler(event: dict, context: object) -> dict:  # type: ignore[type-arg]
    return app.resolve(event, context)  # type: ignore[arg-type]
