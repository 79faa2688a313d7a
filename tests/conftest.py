"""Fixtures shared across test folders."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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
