"""The service validates an HTTP body's JSON bytes without decoding them to a dict first.

Both routes must give every body the same answer: the same payload, or the same error with
the same status, detail and field pointers. These tests run each body both ways.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders_core.application import MAX_JSON_DEPTH, CreateOrder, parse_json_object, validate_payload
from orders_core.errors import OrdersError, ValidationFailed


def answer(validate: Callable[[], Any]) -> Any:
    """The payload as JSON, or the visible parts of the error."""
    try:
        return validate().model_dump(mode="json", by_alias=True)
    except OrdersError as error:
        fields = error.errors if isinstance(error, ValidationFailed) else []
        return (
            type(error).__name__,
            error.status,
            error.detail,
            [(f.pointer, f.detail) for f in fields],
        )


def dict_route(body: bytes) -> Any:
    """How bodies were validated before: decoded to a dict, then the dict validated."""
    return answer(lambda: validate_payload(CreateOrder, parse_json_object(body)))


def bytes_route(body: bytes) -> Any:
    return answer(lambda: validate_payload(CreateOrder, body))


ITEM = b'{"id":"sku-1","qty":2}'
BODIES = [
    b'{"items":[' + ITEM + b"]}",
    b' {"items":[' + ITEM + b'],"customerId":"c-1"}\n',
    b'{"items":[{"sku":"a","quantity":1,"unitPrice":5,"currency":"EUR"}]}',
    b'{"items":[{"id":"a","qty":1,"unitPrice":5,"currency":"EUR"},' + ITEM + b"]}",  # mixed
    b'{"items":[{"id":"a","qty":1}],"items":[{"id":"b","qty":2}]}',  # duplicate key: last
    b'{"items":[{"id":"a","qty":NaN}]}',
    b'{"items":[{"id":"a","qty":Infinity}]}',
    b'{"items":[{"id":"a","qty":2.0}]}',
    b'{"items":[{"id":"a","qty":1e400}]}',
    b'{"items":[{"id":"a","qty":true}]}',
    b'{"items":[{"id":"a","qty":"2"}]}',
    b'{"items":[{"id":"a","qty":1' + b"0" * 5000 + b"}]}",  # past the int digit limit
    b'{"items":[{"id":"a\\ud800","qty":1}]}',  # lone surrogate
    b'{"items":[{"id":"\xff","qty":1}]}',  # invalid UTF-8 inside a string
    b'{"items":[{"id":"a\x01","qty":1}]}',  # raw control character
    b'\xef\xbb\xbf{"items":[' + ITEM + b"]}",  # byte order mark
    b'{"items":[' + ITEM + b"]} trailing",
    b'{"items":[]}',
    b'{"items":[' + b",".join([ITEM] * 101) + b"]}",
    b'{"items":[' + ITEM + b'],"extra":1}',
    b'{"items":[' + ITEM + b'],"customerId":"bad id"}',
    b'{"customerId":"c-1"}',
    b"",
    b"   ",
    b"{",
    b"[1]",
    b'"text"',
    b"null",
    b"\xff",
    b'{"items":' + b"[" * (MAX_JSON_DEPTH + 5) + b"]" * (MAX_JSON_DEPTH + 5) + b"}",
    b'{"items":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b'{"a":' * 20 + b"1" + b"}" * 20,  # nested, shallower than the limit
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_bytes_and_dict_routes_answer_alike(body: bytes) -> None:
    assert bytes_route(body) == dict_route(body)


def test_the_corpus_covers_acceptance_and_every_kind_of_refusal() -> None:
    kinds = {a[0] if isinstance(a, tuple) else "accepted" for a in map(bytes_route, BODIES)}
    assert kinds == {"accepted", "MalformedRequest", "ValidationFailed"}


def test_a_body_that_is_not_an_object_points_at_the_root() -> None:
    assert bytes_route(b"[1]") == (
        "ValidationFailed",
        422,
        "the body must be a JSON object",
        [("/", "not an object")],
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
item = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=6), st.integers(), st.sampled_from(["sku-1", "a.b"]))},
    optional={
        "qty": st.one_of(st.integers(-2, 10_002), st.floats(), st.booleans(), st.text(max_size=3)),
        "unitPrice": st.one_of(st.integers(-1, 10), st.none()),
        "currency": st.sampled_from(["EUR", "usd", "EU", None]),
        "x": json_values,
    },
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"items": st.one_of(st.lists(item, max_size=3), json_values)},
        optional={"customerId": st.one_of(st.text(max_size=5), st.none(), st.integers())},
    ),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(bodies, st.booleans())
def test_generated_bodies_answer_alike(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert bytes_route(body) == dict_route(body)
