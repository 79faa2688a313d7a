"""What ``$default`` sends the HTTP function (both deployments route it there, decision 0012):
unmatched paths and methods get the same problem+json 404/405 as every other adapter."""

from __future__ import annotations

import json
from typing import Any

from orders_aws import apigw
from orders_aws.bootstrap import AwsConfig, Runtime
from orders_core.application import OrderService
from orders_core.edges.http import HttpApi
from orders_core.testing.memory import InMemoryStore
from tests.aws.samples import apigw_v2


class Context:
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_name = "orders-http"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def runtime() -> Runtime:
    service = OrderService(InMemoryStore())
    return Runtime(AwsConfig(table="unused"), service, HttpApi(service), dynamodb=None)  # type: ignore[arg-type]


def default_route(method: str, path: str) -> dict[str, Any]:
    event = apigw_v2(method, path)
    event["routeKey"] = "$default"  # what API Gateway sends for an unmatched request
    event["requestContext"]["routeKey"] = "$default"
    return event


def test_an_unknown_path_gets_problem_json_404() -> None:
    answer = apigw.handle(default_route("GET", "/nope"), Context(), runtime())
    assert answer["statusCode"] == 404
    assert answer["headers"]["content-type"].startswith("application/problem+json")
    problem = json.loads(answer["body"])
    assert problem["status"] == 404
    assert problem["instance"] == "/nope"


def test_a_known_path_with_another_method_gets_405_with_allow() -> None:
    answer = apigw.handle(default_route("DELETE", "/orders"), Context(), runtime())
    assert answer["statusCode"] == 405
    assert answer["headers"]["content-type"].startswith("application/problem+json")
    allow = {m.strip() for m in answer["headers"]["allow"].split(",")}
    assert allow == {"GET", "HEAD", "POST"}
