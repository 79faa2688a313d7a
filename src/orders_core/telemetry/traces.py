"""Spans on the OpenTelemetry API: a command's, an HTTP server's, a publisher's.

Each one is skipped outright while no SDK is installed: the API's no-op spans still cost
their machinery, and an untraced request should pay for none of it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from orders_core.telemetry._context import context_from, propagator, valid_traceparent
from orders_core.telemetry._providers import TRACER_NAME, sdk_configured

if TYPE_CHECKING:
    from opentelemetry import trace as trace  # re-exported: adapters share the lazy import
else:

    class _LazyTrace(ModuleType):
        """``opentelemetry.trace``, imported when first used: the import is a large share of
        a cold start that traces nothing (docs/decisions/0007, ``-X importtime``)."""

        def __getattr__(self, name: str) -> Any:
            from opentelemetry import trace as module

            # From now on, the module itself, here and wherever the package re-exports it.
            for holder in _HOLDERS:
                namespace = vars(sys.modules[holder]) if holder in sys.modules else {}
                if namespace.get("trace") is self:
                    namespace["trace"] = module
            return getattr(module, name)

    _HOLDERS: Final = (__name__, "orders_core.telemetry")
    trace = _LazyTrace("opentelemetry.trace")


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

    Without an SDK there is nothing to record: skip the API's no-op span machinery, a
    measurable cost per command (docs/decisions/0007).
    """
    if not sdk_configured():
        yield trace.INVALID_SPAN
        return
    parent = None
    links: list[trace.Link] = []
    active = trace.get_current_span().get_span_context()
    traceparent = valid_traceparent(traceparent)
    if not active.is_valid:
        parent = context_from(traceparent, tracestate)
    elif traceparent and traceparent.split("-")[1] != trace.format_trace_id(active.trace_id):
        # The command carries another trace (say, a structured CloudEvent's extension under
        # an HTTP request that had none): keep the causal tie as a link.
        links = link_to(traceparent)
    with tracer().start_as_current_span(
        name, context=parent, kind=trace.SpanKind.INTERNAL, attributes=attributes, links=links
    ) as span:
        yield span


@contextlib.contextmanager
def server_span(
    method: str, route: str | None, path: str, traceparent: str | None, tracestate: str | None
) -> Iterator[trace.Span]:
    """An HTTP SERVER span (semantic conventions), parented on the caller's trace context."""
    if not sdk_configured():
        yield trace.INVALID_SPAN
        return
    parent = None
    if traceparent and not trace.get_current_span().get_span_context().is_valid:
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        parent = propagator().extract(carrier)
    name = f"{method} {route}" if route else method
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
    if route:
        attributes["http.route"] = route
    with tracer().start_as_current_span(
        name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def link_to(traceparent: str | None) -> list[trace.Link]:
    """A span link to the producer of a batch record (for batch consumers)."""
    context = trace.get_current_span(context_from(traceparent)).get_span_context()
    return [trace.Link(context)] if context.is_valid else []


@contextlib.contextmanager
def publishing(events: list[Any], destination: str) -> Iterator[list[Any]]:
    """PRODUCER spans for a batch of domain events about to be published.

    Each span is a child of the trace its event was committed in (restored from the stored
    ``traceparent``), and the events yielded carry that span's context instead, so a consumer
    of the published CloudEvent continues the same trace. Without an SDK the events pass
    through untouched. The spans end when the block does (marked as errors if it raises).
    """
    if not sdk_configured() or not events:
        yield events
        return
    import dataclasses

    spans = []
    stamped = []
    for event in events:
        span = tracer().start_span(
            f"publish {event.type}",
            context=context_from(event.traceparent, event.tracestate),
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.operation.type": "publish",
                "messaging.destination.name": destination,
                "messaging.message.id": event.id,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "orders.order_id": event.subject,
            },
        )
        carrier: dict[str, str] = {}
        propagator().inject(carrier, context=trace.set_span_in_context(span))
        spans.append(span)
        stamped.append(
            dataclasses.replace(
                event,
                traceparent=carrier.get("traceparent", event.traceparent),
                tracestate=carrier.get("tracestate", event.tracestate),
            )
        )
    try:
        yield stamped
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()
