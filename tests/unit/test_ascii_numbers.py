"""Numbers in requests are ASCII digits: ``str.isdigit()`` also takes a superscript two
(which ``int()`` then refuses: a 500), and ``int()`` takes Arabic-Indic digits and ``"1_0"``
(numbers nobody sent)."""

from __future__ import annotations

import pytest

from orders_core.application import OrderService
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse, parse_if_match
from orders_core.testing import FakeClock, InMemoryStore
from tests.digits import AR0, AR1, AR5, FW1, SUP1, SUP2, SUP3

# Superscripts pass isdigit() but not int(); Arabic-Indic and fullwidth digits, underscores
# and signs pass int() but are not what an HTTP number is.
NOT_ASCII_DIGITS = [SUP1, SUP2, SUP3, AR1, AR5 + AR0, FW1, "1_0", "+1", " 1", "1 ", "-1", "0x1", ""]


@pytest.fixture
def api() -> HttpApi:
    return HttpApi(OrderService(InMemoryStore(), clock=FakeClock()))


def _create(api: HttpApi) -> str:
    created = api.handle(
        HttpRequest(
            "POST",
            "/orders",
            {"content-type": "application/json"},
            body=b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}',
        )
    )
    assert created.status == 201
    return created.headers["location"]


def _status(response: HttpResponse, status: int) -> None:
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("text", ["0", "7", "0012", "123456789012345678"])
def test_ascii_int_reads_ascii_digits(text: str) -> None:
    from orders_core.edges.numbers import ascii_int

    assert ascii_int(text) == int(text)


@pytest.mark.parametrize("text", NOT_ASCII_DIGITS)
def test_ascii_int_refuses_everything_else(text: str) -> None:
    from orders_core.edges.numbers import ascii_int

    assert ascii_int(text) is None


@pytest.mark.parametrize("tag", [SUP1, SUP2, AR1, FW1, "1_0"])
def test_if_match_with_non_ascii_digits_is_a_412(api: HttpApi, tag: str) -> None:
    location = _create(api)
    assert parse_if_match(f'"{tag}"') == 0
    response = api.handle(HttpRequest("POST", f"{location}/confirm", {"if-match": f'"{tag}"'}))
    _status(response, 412)
    assert api.handle(HttpRequest("GET", location)).json()["version"] == 1


@pytest.mark.parametrize("limit", [SUP2, SUP1, AR1, AR5 + AR0, FW1, "1_0", "+5", " 5"])
def test_limit_with_non_ascii_digits_is_a_400(api: HttpApi, limit: str) -> None:
    _create(api)
    response = api.handle(
        HttpRequest("GET", "/orders", query={"customerId": "c-1", "limit": limit})
    )
    _status(response, 400)
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("version", ["1", "1_0", " 1 ", SUP1, 1.0, True])
def test_expected_version_in_a_command_is_a_json_integer(api: HttpApi, version: object) -> None:
    """Lax pydantic would read the string "1_0" as 10 and " 1 " as 1."""
    import json

    location = _create(api)
    event = {
        "specversion": "1.0",
        "id": "evt-v",
        "source": "urn:test",
        "type": "io.orderscore.order.confirm.v1",
        "data": {"orderId": location.rsplit("/", 1)[1], "expectedVersion": version},
    }
    response = api.handle(
        HttpRequest(
            "POST",
            "/events",
            {"content-type": "application/cloudevents+json"},
            body=json.dumps(event).encode(),
        )
    )
    _status(response, 422)
    assert api.handle(HttpRequest("GET", location)).json()["version"] == 1
