"""JSON log lines: the fields operators need, and never the request's payload."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orders_core.telemetry import JsonLogFormatter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE}-00f067aa0ba902b7-01"
SECRET = "sku-secret-payload-7"
BODY = json.dumps({"items": [{"id": SECRET, "qty": 1}], "customerId": "cust-private"}).encode()


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    from orders_aws.observe import LambdaContextFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(LambdaContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_lambda_lines_carry_request_id_cold_start_trace_and_order(
    lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import mock_aws

    from orders_aws import apigw, observe
    from orders_aws.bootstrap import AwsConfig, build
    from orders_aws.clients import make_client
    from tests.aws.conftest import LambdaContext
    from tests.aws.samples import apigw_v2
    from tests.aws.support import new_table, set_fake_env

    set_fake_env(monkeypatch)
    monkeypatch.setattr(observe, "_first", [True])
    with mock_aws():
        client = make_client()
        rt = build(AwsConfig(table=new_table(client)), client)
        first = apigw.handle(apigw_v2(body=BODY, headers={"traceparent": TP}), LambdaContext(), rt)
        apigw.handle(apigw_v2("GET", "/orders/nope"), LambdaContext(aws_request_id="r-2"), rt)
    order_id = json.loads(first["body"])["orderId"]
    entries = [e for e in parsed(lines) if e["message"] == "request"]
    assert len(entries) == 2
    created, missing = entries
    assert created["requestId"] == created["correlationId"] == LambdaContext().aws_request_id
    assert (created["coldStart"], missing["coldStart"]) == (True, False)
    assert (created["traceId"], len(created["spanId"])) == (TRACE, 16)
    assert created["orderId"] == order_id
    assert "orderId" not in missing
    assert (created["status"], missing["status"]) == (201, 404)
    assert {"timestamp", "level", "logger"} <= set(created)
    text = lines.getvalue()
    assert SECRET not in text
    assert "cust-private" not in text


def test_local_access_lines_name_the_order_but_not_the_payload(
    lines: io.StringIO, tmp_path: Path
) -> None:
    from orders_local.runtime import LocalConfig, LocalRuntime
    from tests.local.support import Client

    rt = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0, sink="none"))
    rt.start()
    try:
        client = Client(rt.server.server_address[1])
        order_id = client.request("POST", "/orders", BODY, {"x-request-id": "req-1"}).json()[
            "orderId"
        ]
        client.request("POST", "/orders", b"{broken", {"x-request-id": "req-2"})
        client.close()
    finally:
        rt.stop()
    entries = {
        e["correlationId"]: e for e in parsed(lines) if e.get("logger") == "orders_local.access"
    }
    assert entries["req-1"]["orderId"] == order_id
    assert entries["req-1"]["status"] == 201
    assert entries["req-2"]["status"] == 400
    assert "orderId" not in entries["req-2"]
    assert SECRET not in lines.getvalue()
    assert "cust-private" not in lines.getvalue()
