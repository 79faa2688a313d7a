"""FastAPI + Mangum, boto3 client at init."""

from __future__ import annotations

import os

import boto3
from bench.peers.common import CreateOrder, json_line_logger, put_order
from fastapi import FastAPI, Response
from mangum import Mangum

log = json_line_logger("fastapi-orders")
client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))
api = FastAPI()


@api.post("/orders", status_code=201)
def create(order: CreateOrder) -> Response:
    order_id, body = put_order(client, order)
    log.info("order created %s", order_id)
    return Response(status_code=201, media_type="application/json", content=body)


handler = Mangum(api, lifespan="off")
