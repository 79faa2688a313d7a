"""NATS end to end: ``orders-local serve --sink nats://...`` (its relay in a process of its
own) puts every order's event in the stream once; a server that wants credentials gets them
from the environment, and a wrong one is named without showing it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orders_core.testing.publisher_contract import order_events
from orders_nats import NatsConfig, NatsPublisher, NatsPublishFailed
from tests.jetstream.nats_server import NatsServer, add_stream, cloudevent, stream_messages
from tests.local.support import ServerProcess

pytestmark = pytest.mark.slow


def test_serve_publishes_every_order_to_jetstream(tmp_path: Path, nats_server: NatsServer) -> None:
    add_stream(nats_server.url, "SERVE", ["serve.>"])
    sink = f"nats://127.0.0.1:{nats_server.port}/serve.{{type}}?stream=SERVE"
    server = ServerProcess("--db", str(tmp_path / "o.db"), "--sink", sink)
    try:
        client = server.client()
        ids = []
        for _ in range(20):
            reply = client.request(
                "POST", "/orders", json.dumps({"items": [{"id": "a", "qty": 1}]}).encode()
            )
            assert reply.status == 201
            ids.append(reply.json()["orderId"])
        client.close()
        deadline = time.monotonic() + 15
        while len(got := stream_messages(nats_server.url, "SERVE")) < len(ids):
            assert time.monotonic() < deadline, f"{len(got)} of {len(ids)} in the stream"
            time.sleep(0.1)
    finally:
        code, err = server.stop()
    assert code == 0, err
    events = [cloudevent(headers, data) for _, headers, data in got]
    assert [e["subject"] for e in events] == ids  # each once, in commit order
    assert {e["type"] for e in events} == {"io.orderscore.order.created.v1"}


@pytest.fixture
def token_server(tmp_path: Path, nats_server: NatsServer) -> Iterator[NatsServer]:
    """A second server that wants a token (``--auth``)."""
    server = NatsServer(nats_server.binary, tmp_path)
    server.extra_args = ["--auth", "right-token-1234"]
    try:
        yield server.start()
    finally:
        server.stop()


def test_a_token_from_the_environment_authenticates(token_server: NatsServer) -> None:
    url = f"nats://right-token-1234@127.0.0.1:{token_server.port}"
    add_stream(url, "AUTH", ["auth.>"])
    spec = f"nats://127.0.0.1:{token_server.port}/auth.{{type}}?stream=AUTH"
    good = NatsPublisher(NatsConfig.from_spec(spec, {"ORDERS_NATS_TOKEN": "right-token-1234"}))
    try:
        good.publish(order_events(2))
    finally:
        good.close()
    assert len(stream_messages(url, "AUTH")) == 2


def test_a_wrong_token_is_named_not_shown(
    token_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    spec = f"nats://127.0.0.1:{token_server.port}/auth.{{type}}"
    config = NatsConfig.from_spec(spec, {"ORDERS_NATS_TOKEN": "wrong-token-5678"})
    bad = NatsPublisher(replace(config, connect_timeout=1))
    try:
        with pytest.raises(NatsPublishFailed) as raised:
            bad.publish(order_events(1))
    finally:
        bad.close()
    failure = raised.value.failed[0]
    assert failure.code == "Unreachable"
    assert "Authorization" in failure.message
    assert "wrong-token" not in failure.message + caplog.text
