"""The publisher contract against the in-memory publisher: the reference for every sink."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orders_core.application import EventPublisher
from orders_core.testing import InMemoryPublisher
from orders_core.testing.publisher_contract import PublisherContract, cloudevent


class TestInMemoryPublisher(PublisherContract):
    def make_publisher(self, tmp_path: Path) -> EventPublisher:
        return InMemoryPublisher()

    def received(self, publisher: EventPublisher) -> list[dict[str, Any]]:
        assert isinstance(publisher, InMemoryPublisher)
        return [cloudevent(e) for e in publisher.published]

    @contextlib.contextmanager
    def sink_down(self, publisher: EventPublisher) -> Iterator[None]:
        assert isinstance(publisher, InMemoryPublisher)
        publisher.down = True
        try:
            yield
        finally:
            publisher.down = False
