"""Unicode digits through the Lambda HTTP entrypoint, with API Gateway v2 event shapes: a
superscript two passes ``str.isdigit()`` and fails ``int()``; before the fix these were 500s."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orders_aws import bootstrap
from orders_aws.bootstrap import AwsConfig, ConfigError
from orders_aws.clients import make_client
from tests.aws.conftest import LambdaContext
from tests.aws.samples import apigw_v2
from tests.aws.support import new_table
from tests.digits import AR0, AR1, SUP1, SUP2

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'


@pytest.fixture
def handler(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    """``orders_aws.apigw.handler`` as Lambda loads it, on a table in moto."""
    monkeypatch.setenv("ORDERS_TABLE", new_table(make_client()))
    bootstrap.reset()
    sys.modules.pop("orders_aws.apigw", None)
    module = importlib.import_module("orders_aws.apigw")
    yield module.handler
    bootstrap.reset()


def _problem(response: dict[str, Any], status: int) -> dict[str, Any]:
    assert response["statusCode"] == status, response["body"]
    assert response["headers"]["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response["body"])
    assert "Traceback" not in response["body"]
    return body


@pytest.mark.parametrize("tag", [SUP1, SUP2, AR1])
def test_if_match_with_unicode_digits_is_a_412(
    handler: Handler, context: LambdaContext, tag: str
) -> None:
    created = handler(apigw_v2(body=SEED), context)
    assert created["statusCode"] == 201
    location = created["headers"]["location"]
    event = apigw_v2("POST", f"{location}/confirm", headers={"if-match": f'"{tag}"'})
    _problem(handler(event, context), 412)
    assert json.loads(handler(apigw_v2("GET", location), context)["body"])["version"] == 1


@pytest.mark.parametrize(("encoded", "decoded"), [("%C2%B2", SUP2), ("%D9%A1", AR1)])
def test_limit_with_unicode_digits_is_a_400(
    handler: Handler, context: LambdaContext, encoded: str, decoded: str
) -> None:
    event = apigw_v2("GET", "/orders", query=f"customerId=c-1&limit={encoded}")
    # API Gateway hands the raw string over as sent and the parameters decoded.
    event["queryStringParameters"] = {"customerId": "c-1", "limit": decoded}
    assert "limit" in _problem(handler(event, context), 400)["detail"]


@pytest.mark.parametrize(
    "name", ["ORDERS_IDEMPOTENCY_TTL_SECONDS", "ORDERS_MAX_BODY_BYTES", "ORDERS_DEADLINE_MARGIN_MS"]
)
@pytest.mark.parametrize("value", [SUP2, AR1 + AR0 + AR0, "1_000", " 5", "-5"])
def test_numeric_settings_are_ascii_digits(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        AwsConfig.from_env({"ORDERS_TABLE": "t", name: value})
