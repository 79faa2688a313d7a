"""Tracing and JSON logs on the OpenTelemetry API only.

The core never imports the SDK: without one configured every span is the API's no-op span
and costs almost nothing. Runtimes that want traces configure the SDK (the ``otel`` extra).

Trace context travels as W3C ``traceparent``/``tracestate`` values: from an HTTP header or a
command CloudEvent's distributed-tracing extension, into the command span, and from there into
every event the command emits, so a consumer on the far side of a queue continues the trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME: Final = "orders_core"
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACEPARENT_RE: Final = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_MAX_TRACESTATE: Final = 512

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orders_core_correlation_id", default=None
)
"""The id that ties log lines of one request or record together (set by the adapter)."""


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed version-00 traceparent with non-zero ids, else None.

    W3C Trace Context says to ignore (not reject) a malformed header and start a new trace.
    """
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value.strip())
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return match.group(0)


def valid_tracestate(value: str | None) -> str | None:
    if not value or len(value) > _MAX_TRACESTATE or not value.isascii():
        return None
    return value


def sdk_configured() -> bool:
    """True once a runtime has installed a real TracerProvider (the API's default is a proxy)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def command_span(
    name: str,
    *,
    traceparent: str | None,
    tracestate: str | None,
    attributes: dict[str, Any],
) -> Iterator[trace.Span]:
    """A span for one command, parented on the active span if any, else on the command's
    own trace context (a command that arrived through a queue).

    Without an SDK there is nothing to record: skip the API's no-op span machinery, which
    cost ~25 us a command here (measured with cProfile on the create path).
    """
    if not sdk_configured():
        yield trace.INVALID_SPAN
        return
    parent = None
    if not trace.get_current_span().get_span_context().is_valid and traceparent:
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        parent = _PROPAGATOR.extract(carrier)
    with tracer().start_as_current_span(
        name, context=parent, kind=trace.SpanKind.INTERNAL, attributes=attributes
    ) as span:
        yield span


def outgoing_context(
    fallback_traceparent: str | None, fallback_tracestate: str | None
) -> tuple[str | None, str | None]:
    """The trace context to stamp on an emitted event.

    With an SDK the active span's context (so consumers become its children); with the
    no-op API, the context the command arrived with, passed through unchanged.
    """
    if not sdk_configured():
        return fallback_traceparent, fallback_tracestate
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if "traceparent" in carrier:
        return carrier["traceparent"], carrier.get("tracestate") or None
    return fallback_traceparent, fallback_tracestate


_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with trace id, span id and correlation id.

    Fields passed with ``extra=`` are included; adapters use that for ``orderId``,
    ``commandType`` and the like. Message arguments are formatted, never the request body.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["traceId"] = trace.format_trace_id(span_context.trace_id)
            entry["spanId"] = trace.format_span_id(span_context.span_id)
        cid = correlation_id.get()
        if cid is not None:
            entry["correlationId"] = cid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Logs are for operators: the type is kept, the traceback too, responses never.
            entry["error"] = record.exc_info[0].__name__
            entry["stack"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))
