"""observe.invocation: what one Lambda invocation sets up, it takes down, however it ends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orders_aws import observe
from orders_core import telemetry

CONTEXT = SimpleNamespace(aws_request_id="req-1", function_name="fn")


def test_request_scope_is_set_inside_and_cleared_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "sdk_configured", lambda: False)  # whatever ran before
    with observe.invocation(CONTEXT, "http") as attributes:
        assert observe.request_id.get() == "req-1"
        assert telemetry.correlation_id.get() == "req-1"
        assert observe.LambdaContextFilter.fields()["requestId"] == "req-1"
    assert attributes == {}  # no SDK: no FaaS attributes are built
    assert observe.request_id.get() is None
    assert telemetry.correlation_id.get() is None


def test_an_exception_in_the_invocation_still_clears_the_scope() -> None:
    with pytest.raises(KeyError), observe.invocation(CONTEXT, "http"):
        raise KeyError("boom")
    assert observe.request_id.get() is None


def test_a_span_that_cannot_start_still_clears_the_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> object:
        raise RuntimeError("no tracer")

    monkeypatch.setattr(telemetry, "sdk_configured", lambda: True)
    monkeypatch.setattr(telemetry, "tracer", broken)
    with pytest.raises(RuntimeError), observe.invocation(CONTEXT, "pubsub", span_name="x"):
        pass  # pragma: no cover - entering fails
    assert observe.request_id.get() is None
    assert telemetry.correlation_id.get() is None
