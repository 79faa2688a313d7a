"""FastAPI + Mangum, boto3 client at init."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid

import boto3
from bench.peers.common import CreateOrder
from fastapi import FastAPI, Response
from mangum import Mangum

log = logging.getLogger("fastapi-orders")
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(logging.Formatter('{"level":"%(levelname)s","message":"%(message)s"}'))
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False

TABLE = os.environ.get("ORDERS_TABLE", "orders")
client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))
api = FastAPI()


@api.post("/orders", status_code=201)
def create(order: CreateOrder) -> Response:
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
    return Response(status_code=201, media_type="application/json", content=body)


handler = Mangum(api, lifespan="off")
