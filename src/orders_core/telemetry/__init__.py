"""Tracing, metrics and JSON logs on the OpenTelemetry API only.

The core never imports the SDK: without one configured every span is the API's no-op span
and costs almost nothing. Runtimes that want traces configure the SDK (the ``otel`` extra)
with :mod:`orders_core.telemetry.setup`, which this package does not import.

Trace context travels as W3C ``traceparent``/``tracestate`` values: from an HTTP header or a
command CloudEvent's distributed-tracing extension, into the command span, and from there into
every event the command emits, so a consumer on the far side of a queue continues the trace.

One job a module: ``_providers`` (is an SDK installed?), ``_context`` (trace context in and
out), :mod:`~orders_core.telemetry.traces` (spans), :mod:`~orders_core.telemetry.logs`
(JSON lines and the ids they carry), :mod:`~orders_core.telemetry.metrics` (instruments).
Callers use the names below, as ``telemetry.X``.
"""

from orders_core.telemetry._context import (
    context_from,
    outgoing_context,
    valid_traceparent,
    valid_tracestate,
)
from orders_core.telemetry._providers import TRACER_NAME, sdk_configured, sdk_installed_now
from orders_core.telemetry.logs import (
    HeldLines,
    JsonLogFormatter,
    batched_log_lines,
    correlation_id,
    lean_log_records,
    log_line,
    order_id,
)
from orders_core.telemetry.metrics import METRICS, Metrics
from orders_core.telemetry.traces import (
    command_span,
    link_to,
    publishing,
    server_span,
    trace,  # lazy: opentelemetry.trace, imported on first attribute access
    tracer,
)

__all__ = [
    "METRICS",
    "TRACER_NAME",
    "HeldLines",
    "JsonLogFormatter",
    "Metrics",
    "batched_log_lines",
    "command_span",
    "context_from",
    "correlation_id",
    "lean_log_records",
    "link_to",
    "log_line",
    "order_id",
    "outgoing_context",
    "publishing",
    "sdk_configured",
    "sdk_installed_now",
    "server_span",
    "trace",
    "tracer",
    "valid_traceparent",
    "valid_tracestate",
]
