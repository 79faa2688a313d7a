"""API Gateway events the handler refuses: a HEAD still gets no body, and an event that is
not an object is a 400, not a crash (helper-43's review)."""

from __future__ import annotations

from orders_aws import apigw
from orders_aws.bootstrap import Runtime
from tests.aws.conftest import LambdaContext
from tests.aws.samples import apigw_v2, lambda_authorizer

SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'


def test_head_answer_has_no_body_even_when_the_event_is_refused(
    rt: Runtime, context: LambdaContext
) -> None:
    """HEAD must never carry content (RFC 9110 9.3.2); the early-error path skips the strip."""
    event = apigw_v2("HEAD", "/orders/x", authorizer=lambda_authorizer({"other": "x"}))
    response = apigw.handle(event, context, rt)
    assert response["statusCode"] == 401
    assert response["body"] == ""


def test_head_with_undecodable_base64_has_no_body(rt: Runtime, context: LambdaContext) -> None:
    event = apigw_v2("HEAD", "/orders", base64_body=True)
    event["body"] = "***"
    response = apigw.handle(event, context, rt)
    assert response["statusCode"] == 400
    assert response["body"] == ""


def test_a_non_object_event_is_a_400_not_a_crash(rt: Runtime, context: LambdaContext) -> None:
    """shapes refuses it with MalformedRequest, then handle() calls event.get() on it."""
    response = apigw.handle([], context, rt)  # type: ignore[arg-type]
    assert response["statusCode"] == 400
