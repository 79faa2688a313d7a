"""The emulators, started once for the whole test run and stopped at its end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gcp.emulators import ENV, Emulator, unavailable

PROJECT = "demo-orders"
"""A ``demo-`` project: the emulators' convention for one that exists nowhere else."""
RUN = uuid.uuid4().hex[:8]
"""In collection prefixes: an emulator left running between test runs keeps its data."""


def _emulator(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = unavailable()
    if reason is not None and not os.environ.get(ENV[kind]):
        pytest.skip(reason)
    emulator = Emulator(kind, tmp_path_factory.mktemp(kind) / "emulator.log").start()
    previous = os.environ.get(ENV[kind])
    os.environ[ENV[kind]] = emulator.host
    try:
        yield emulator.host
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop(ENV[kind], None)


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _emulator("firestore", tmp_path_factory)


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _emulator("pubsub", tmp_path_factory)


@pytest.fixture(scope="session")
def firestore_client(firestore_emulator: str) -> Iterator[Any]:
    from google.cloud import firestore

    client = firestore.Client(project=PROJECT)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def pubsub_publisher(pubsub_emulator: str) -> Any:
    from orders_gcp.pubsub import publisher_client

    return publisher_client()


@pytest.fixture(scope="session")
def pubsub_subscriber(pubsub_emulator: str) -> Iterator[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    try:
        yield subscriber
    finally:
        subscriber.close()
