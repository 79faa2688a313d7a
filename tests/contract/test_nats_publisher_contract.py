"""The publisher contract against a real nats-server with JetStream, in both content modes of
the CloudEvents NATS binding. What a consumer reads is decoded from the stream independently
of the publisher (tests.jetstream.nats_server.cloudevent)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import EventPublisher
from orders_core.testing.publisher_contract import PublisherContract
from orders_nats import NatsConfig, NatsPublisher
from tests.jetstream.nats_server import NatsServer, add_stream, cloudevent, stream_messages

_streams = itertools.count(1)


class _JetStreamContract(PublisherContract):
    spec = "nats://127.0.0.1:{port}/{prefix}.{{type}}?stream={stream}&timeout=1"

    @pytest.fixture(autouse=True)
    def _stream(self, nats_server: NatsServer) -> None:
        """A stream of its own per test: nothing another test published is seen."""
        self.server = nats_server
        self.stream = f"CONTRACT{next(_streams)}"
        self.prefix = self.stream.lower()
        add_stream(nats_server.url, self.stream, [f"{self.prefix}.>"])

    def make_publisher(self, tmp_path: Path) -> EventPublisher:
        spec = self.spec.format(port=self.server.port, prefix=self.prefix, stream=self.stream)
        # Bounded waits keep the sink-down case short: the server is gone for all of it.
        return NatsPublisher(replace(NatsConfig.from_spec(spec, {}), connect_timeout=1))

    def received(self, publisher: EventPublisher) -> list[dict[str, Any]]:
        messages = stream_messages(self.server.url, self.stream)
        return [cloudevent(headers, data) for _, headers, data in messages]

    @contextlib.contextmanager
    def sink_down(self, publisher: EventPublisher) -> Iterator[None]:
        """The server stops (its stream on disk stays) and comes back on the same port."""
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()


class TestNatsBinaryMode(_JetStreamContract):
    pass


class TestNatsStructuredMode(_JetStreamContract):
    spec = "nats+structured://127.0.0.1:{port}/{prefix}.{{type}}?stream={stream}&timeout=1"
