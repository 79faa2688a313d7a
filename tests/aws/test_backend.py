"""The ``dynamodb`` backend factory: what runtimes and the CLI build from settings."""

from __future__ import annotations

import pytest

from orders_aws.clients import make_client
from orders_aws.dynamodb import DynamoDBStore, backend
from tests.aws.support import new_table


def test_it_builds_the_store_on_an_existing_table_and_says_where_events_go(aws: None) -> None:
    table = new_table(make_client(), "orders-backend")
    built = backend({"table": table})
    assert built.name == "dynamodb"
    assert isinstance(built.store, DynamoDBStore)
    assert built.store.table == table
    assert built.store.get("0" * 32) is None  # it reaches the table
    assert built.describe == f"DynamoDB table {table}"
    assert built.events == "the table's stream"
    assert built.outbox is None
    assert built.file is None
    built.close()


def test_a_missing_table_setting_names_the_option() -> None:
    with pytest.raises(ValueError, match="--table"):
        backend({})
    with pytest.raises(ValueError, match="--table"):
        backend({"table": ""})


def test_a_table_that_does_not_exist_fails_at_startup(aws: None) -> None:
    with pytest.raises(ValueError, match=r"cannot use DynamoDB table 'nope': ResourceNotFound"):
        backend({"table": "nope"})


def test_the_endpoint_setting_is_where_the_client_goes(aws: None) -> None:
    # Nothing listens on port 9 (discard): the lookup fails there, not in moto's AWS.
    with pytest.raises(ValueError, match="cannot use DynamoDB table 'orders': EndpointConnection"):
        backend({"table": "orders", "endpoint_url": "http://127.0.0.1:9"})


def test_the_connection_pool_is_sized_for_the_request_threads(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --threads N` runs N store calls at once: with botocore's 10 connections, the
    11th would wait for a connection however many threads were free."""
    from orders_local.arguments import build_parser
    from orders_local.cli import prepare

    for name in ("ORDERS_LOCAL_DYNAMODB_ENDPOINT", "ORDERS_LOCAL_THREADS"):
        monkeypatch.delenv(name, raising=False)  # moto's AWS, and the option as given

    table = new_table(make_client(), "orders-pool")
    args = build_parser().parse_args(["serve", "--store", "dynamodb", "--table", table,
                                      "--threads", "48"])  # fmt: skip
    config, settings = prepare(args)
    built = backend(settings)
    try:
        assert isinstance(built.store, DynamoDBStore)
        assert built.store.client.meta.config.max_pool_connections == 48 == config.threads
    finally:
        built.close()
    default = backend({"table": table})
    try:
        assert default.store.client.meta.config.max_pool_connections == 10  # type: ignore[attr-defined]
    finally:
        default.close()
