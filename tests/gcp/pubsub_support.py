"""Topics, subscriptions and pulls on the Pub/Sub emulator, for tests."""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.gcp.conftest import PROJECT

_names = itertools.count()


def unique(kind: str) -> str:
    return f"{kind}-{os.getpid()}-{next(_names)}"


def topic(publisher: Any, name: str | None = None) -> str:
    path = f"projects/{PROJECT}/topics/{name or unique('topic')}"
    publisher.create_topic(request={"name": path})
    return path


def subscription(subscriber: Any, topic_path: str, *, ordering: bool = True, **extra: Any) -> str:
    path = f"projects/{PROJECT}/subscriptions/{unique('sub')}"
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": topic_path,
            "enable_message_ordering": ordering,
            "ack_deadline_seconds": 10,
            **extra,
        }
    )
    return path


def pull(subscriber: Any, path: str, *, expect: int = 0, wait: float = 5.0) -> list[Any]:
    """Every message the subscription has (at least ``expect``, waiting up to ``wait`` s for
    them), acknowledged, in the order the emulator delivered them."""
    got: list[Any] = []
    deadline = time.monotonic() + wait
    while True:
        with warnings.catch_warnings():
            # return_immediately is deprecated for production pulls, where long polling is
            # cheaper; here it makes "nothing more" an answer instead of a 4 s wait.
            warnings.simplefilter("ignore", DeprecationWarning)
            response = subscriber.pull(
                request={"subscription": path, "max_messages": 100, "return_immediately": True},
                timeout=5,
            )
        received = list(response.received_messages)
        if received:
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [m.ack_id for m in received]}
            )
            got += [m.message for m in received]
            continue
        if len(got) >= expect or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@contextmanager
def client_on_a_dead_port(make: Any) -> Iterator[Any]:
    """A client built while ``PUBSUB_EMULATOR_HOST`` names a port nobody listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    previous = os.environ["PUBSUB_EMULATOR_HOST"]
    os.environ["PUBSUB_EMULATOR_HOST"] = dead
    try:
        client = make()
    finally:
        os.environ["PUBSUB_EMULATOR_HOST"] = previous
    yield client
