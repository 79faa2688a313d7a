"""Hostile input, generated: the HTTP binding, CloudEvents parsing and the Lambda event
adapters answer with a clear 4xx or a documented rejection, never an unhandled exception.
Bounded: a fixed number of examples per property, no deadline flakiness."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders_aws.shapes import (
    command_from_eventbridge,
    command_from_sqs_record,
    http_request_from_apigw,
)
from orders_core.application import OrderService
from orders_core.edges.cloudevents_http import command_from_http
from orders_core.edges.http import HttpApi, HttpRequest
from orders_core.errors import OrdersError
from orders_core.testing import InMemoryStore

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
API = HttpApi(OrderService(InMemoryStore()), max_body=4096)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
header_names = st.sampled_from(
    [
        "content-type",
        "idempotency-key",
        "if-match",
        "traceparent",
        "tracestate",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-specversion",
        "ce-time",
        "ce-traceparent",
        "x-request-id",
    ]
)
paths = st.sampled_from(
    [
        "/orders",
        "/orders/x",
        "/orders/x/confirm",
        "/orders/x/cancel",
        "/orders/x/fulfill",
        "/events",
        "/openapi.json",
        "/healthz",
        "/",
        "/orders//confirm",
        "/%00",
    ]
) | st.text(max_size=30).map(lambda t: "/" + t)
bodies = (
    st.binary(max_size=600)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(
        lambda items: json.dumps({"items": items}).encode(),
        st.lists(
            st.dictionaries(
                st.sampled_from(["id", "qty", "sku", "quantity", "unitPrice", "currency"]),
                json_values,
                max_size=4,
            ),
            max_size=5,
        ),
    )
)


@BOUNDED
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=paths,
    headers=st.dictionaries(header_names, st.text(max_size=40), max_size=6),
    query=st.dictionaries(st.sampled_from(["customerId", "limit", "cursor"]), st.text(max_size=20)),
    body=bodies,
)
def test_the_http_binding_never_fails_unhandled(
    method: str, path: str, headers: dict[str, str], query: dict[str, str], body: bytes
) -> None:
    response = API.handle(HttpRequest(method, path, headers, query, body))
    assert response.status < 500 or response.status == 503, response.body
    if response.status >= 400:
        problem = json.loads(response.body)
        assert problem["status"] == response.status
        assert "Traceback" not in response.body.decode()


@BOUNDED
@given(headers=st.dictionaries(header_names, st.text(max_size=40), max_size=6), body=bodies)
def test_cloudevent_parsing_returns_a_command_or_a_request_error(
    headers: dict[str, str], body: bytes
) -> None:
    try:
        command = command_from_http(headers, body)
    except OrdersError as error:  # a property, not one expected raise: PT017 does not fit
        assert 400 <= error.status < 500  # noqa: PT017
    else:
        assert command.id
        assert command.source
        assert isinstance(command.data, dict)


lambda_events = st.dictionaries(
    st.sampled_from(
        [
            "version",
            "rawPath",
            "rawQueryString",
            "headers",
            "body",
            "isBase64Encoded",
            "requestContext",
            "detail",
            "detail-type",
            "source",
            "id",
            "messageAttributes",
            "messageId",
        ]
    ),
    json_values,
    max_size=8,
)


@BOUNDED
@given(event=lambda_events)
def test_lambda_event_adapters_reject_cleanly(event: dict[str, Any]) -> None:
    for adapter in (http_request_from_apigw, command_from_eventbridge):
        try:
            adapter(event)
        except OrdersError as error:
            assert 400 <= error.status < 500  # noqa: PT017
        except (AttributeError, TypeError) as exc:  # pragma: no cover - reported as a bug
            raise AssertionError(f"{adapter.__name__} crashed on {event!r}: {exc}") from exc


@BOUNDED
@given(
    body=bodies.map(lambda b: b.decode("utf-8", "replace")),
    attributes=st.dictionaries(
        st.sampled_from(["traceparent", "tracestate"]),
        st.dictionaries(st.sampled_from(["stringValue", "dataType"]), st.text(max_size=60)),
        max_size=2,
    ),
)
def test_sqs_records_become_commands_or_request_errors(
    body: str, attributes: dict[str, Any]
) -> None:
    try:
        command_from_sqs_record({"body": body, "messageAttributes": attributes})
    except OrdersError as error:  # a property, not one expected raise: PT017 does not fit
        assert 400 <= error.status < 500  # noqa: PT017


def _memory_runtime() -> Any:
    from orders_aws.bootstrap import AwsConfig, Runtime

    service = OrderService(InMemoryStore())
    return Runtime(AwsConfig(table="unused"), service, HttpApi(service), dynamodb=None)  # type: ignore[arg-type]


extension_names = st.sampled_from(["traceparent", "tracestate", "partitionkey", "x"])


@BOUNDED
@given(
    extensions=st.dictionaries(extension_names, json_values, max_size=3),
    attributes=st.dictionaries(
        st.sampled_from(["traceparent", "tracestate"]),
        json_values,
        max_size=2,
    ),
)
def test_an_sqs_batch_survives_any_extension_attributes(
    extensions: dict[str, Any], attributes: dict[str, Any]
) -> None:
    """Whatever a record's CloudEvent extensions and message attributes hold, the handler
    answers, and only that record can be reported: the good record beside it is processed."""
    from orders_aws import sqs

    rt = _memory_runtime()
    event = {
        "specversion": "1.0",
        "id": "odd",
        "source": "urn:fuzz",
        "type": "io.orderscore.order.create.v1",
        "data": {"items": [{"sku": "a", "quantity": 1}], "customerId": "c"},
        **extensions,
    }
    good = {**event, "id": "good"}
    records = [
        {"messageId": "odd", "body": json.dumps(event), "messageAttributes": attributes},
        {"messageId": "good", "body": json.dumps(good), "messageAttributes": {}},
    ]
    result = sqs.handle({"Records": records}, None, rt)
    assert result["batchItemFailures"] in ([], [{"itemIdentifier": "odd"}])
    assert len(rt.service.store.list_by_customer("c").orders) >= 1
