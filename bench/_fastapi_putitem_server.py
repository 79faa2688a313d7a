"""FastAPI on uvicorn[standard] doing one DynamoDB PutItem per POST /orders, for
bench/container.py.

    python bench/_fastapi_putitem_server.py ENDPOINT_URL TABLE [--pin]

The peer as users write it: a sync endpoint (FastAPI runs it in its thread pool, 40
threads), pydantic validation of the body, one boto3 client with its connection pool sized
for the benchmark's 64 connections, one conditional PutItem, a JSON answer. No idempotency,
no events, no access log.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid

import boto3
import uvicorn
from botocore.config import Config
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field


class Item(BaseModel):
    id: str
    qty: int = Field(ge=1)


class CreateOrder(BaseModel):
    items: list[Item] = Field(min_length=1)


ENDPOINT, TABLE = sys.argv[1], sys.argv[2]
if "--pin" in sys.argv[3:]:  # one CPU, as `orders-local serve --cpu-affinity auto` runs
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
client = boto3.client(
    "dynamodb",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    config=Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 3}),
)
app = FastAPI()


@app.post("/orders", status_code=201)
def create(order: CreateOrder) -> Response:
    order_id = uuid.uuid4().hex
    payload = json.dumps(
        {"orderId": order_id, "status": "PENDING", "items": order.model_dump()["items"]}
    )
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "ORDER"}, "body": {"S": payload}},
        ConditionExpression="attribute_not_exists(pk)",
    )
    return Response(payload, 201, media_type="application/json")


if __name__ == "__main__":
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(f"fastapi listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )
