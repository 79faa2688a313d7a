"""Per-invocation observability for the Lambda functions: a FaaS span, request id and cold
start on every log line, and a flush of buffered telemetry before Lambda freezes us."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from orders_core import telemetry
from orders_core.telemetry import setup

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


class invocation:  # noqa: N801 - used as a function: ``with observe.invocation(...)``
    """Wrap one invocation. Entering gives the FaaS attributes (the HTTP function hands them
    to the core's server span instead of opening a second one when ``span_name`` is None).

    A class, not a generator-based context manager: every warm invocation pays for it, and
    the generator machinery cost ~3 us of a ~120 us create (bench/warm.py).
    """

    __slots__ = ("_context", "_kind", "_links_from", "_span", "_span_name", "_tokens", "_trigger")

    def __init__(
        self,
        context: Any,
        trigger: str,
        *,
        span_name: str | None = None,
        kind: SpanKind | None = None,
        links_from: Sequence[str | None] = (),
    ) -> None:
        self._context = context
        self._trigger = trigger
        self._span_name = span_name
        self._kind = kind
        self._links_from = links_from
        self._tokens: tuple[contextvars.Token[Any], ...] = ()
        self._span: contextlib.AbstractContextManager[Any] | None = None

    def __enter__(self) -> dict[str, Any]:
        cold, _first[0] = _first[0], False
        context = self._context
        rid = str(getattr(context, "aws_request_id", "")) or None
        self._tokens = (
            request_id.set(rid),
            cold_start.set(cold),
            telemetry.correlation_id.set(rid),
            telemetry.order_id.set(None),
        )
        if not telemetry.sdk_configured():
            return {}
        attributes = faas_attributes(context, self._trigger, cold)
        if self._span_name is not None:
            try:
                links = [link for tp in self._links_from for link in telemetry.link_to(tp)]
                span = telemetry.tracer().start_as_current_span(
                    self._span_name,
                    kind=telemetry.trace.SpanKind.CONSUMER if self._kind is None else self._kind,
                    attributes=attributes,
                    links=links,
                )
                span.__enter__()
            except BaseException:
                self._end()  # __exit__ will not run
                raise
            self._span = span
        return attributes

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._span is not None:
                self._span.__exit__(*exc_info)
        finally:
            self._end()

    def _end(self) -> None:
        tokens = self._tokens
        telemetry.order_id.reset(tokens[3])
        telemetry.correlation_id.reset(tokens[2])
        cold_start.reset(tokens[1])
        request_id.reset(tokens[0])
        setup.flush()


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
