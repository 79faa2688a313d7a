"""Per-invocation observability for the Lambda functions: a FaaS span, request id and cold
start on every log line, and a flush of buffered telemetry before Lambda freezes us."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from orders_core import sdk, telemetry

if TYPE_CHECKING:
    from opentelemetry.trace import SpanKind

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orders_aws_request_id", default=None
)
cold_start: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "orders_aws_cold_start", default=None
)
_first = [True]


class LambdaContextFilter(logging.Filter):
    """Adds ``requestId`` and ``coldStart`` to every record logged during an invocation."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.fields().items():
            setattr(record, name, value)
        return True

    @staticmethod
    def fields() -> dict[str, Any]:
        """What :meth:`filter` adds (``telemetry.log_line`` asks for it without a record)."""
        rid = request_id.get()
        if rid is None:
            return {}
        return {"requestId": rid, "coldStart": cold_start.get()}


def faas_attributes(context: Any, trigger: str, cold: bool) -> dict[str, Any]:
    return {
        "faas.trigger": trigger,
        "faas.invocation_id": str(getattr(context, "aws_request_id", "")),
        "faas.coldstart": cold,
        "faas.name": str(getattr(context, "function_name", "")),
        "cloud.provider": "aws",
    }


@contextlib.contextmanager
def invocation(
    context: Any,
    trigger: str,
    *,
    span_name: str | None = None,
    kind: SpanKind | None = None,
    links_from: Sequence[str | None] = (),
) -> Iterator[dict[str, Any]]:
    """Wrap one invocation. Yields the FaaS attributes (the HTTP function hands them to the
    core's server span instead of opening a second one when ``span_name`` is None)."""
    cold, _first[0] = _first[0], False
    rid = str(getattr(context, "aws_request_id", "")) or None
    tokens = (
        request_id.set(rid),
        cold_start.set(cold),
        telemetry.correlation_id.set(rid),
        telemetry.order_id.set(None),
    )
    traced = telemetry.sdk_configured()
    attributes = faas_attributes(context, trigger, cold) if traced else {}
    try:
        if span_name is not None and traced:
            links = [link for tp in links_from for link in telemetry.link_to(tp)]
            with telemetry.tracer().start_as_current_span(
                span_name,
                kind=telemetry.trace.SpanKind.CONSUMER if kind is None else kind,
                attributes=attributes,
                links=links,
            ):
                yield attributes
        else:
            yield attributes
    finally:
        telemetry.order_id.reset(tokens[3])
        telemetry.correlation_id.reset(tokens[2])
        cold_start.reset(tokens[1])
        request_id.reset(tokens[0])
        sdk.flush()


@contextlib.contextmanager
def record_span(
    name: str, traceparent: str | None, tracestate: str | None, attributes: dict[str, Any]
) -> Iterator[None]:
    """A CONSUMER span for one batch record, continuing its producer's trace and linked to
    the batch invocation that delivered it."""
    if not telemetry.sdk_configured():
        yield
        return
    invocation_span = telemetry.trace.get_current_span().get_span_context()
    links = [telemetry.trace.Link(invocation_span)] if invocation_span.is_valid else []
    parent = telemetry.context_from(traceparent, tracestate)
    with telemetry.tracer().start_as_current_span(
        name,
        context=parent,
        kind=telemetry.trace.SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    ):
        yield
