"""W3C trace context: validating ``traceparent``/``tracestate`` values and carrying them.

Values arrive from HTTP headers and command CloudEvents, which anyone can send, so they are
validated before any OpenTelemetry code sees them; they leave on every emitted event, so a
consumer on the far side of a queue continues the trace.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Final

from orders_core.telemetry._providers import sdk_configured

if TYPE_CHECKING:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_TRACEPARENT_RE: Final = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_MAX_TRACESTATE: Final = 512


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


@functools.cache
def propagator() -> TraceContextTextMapPropagator:
    """The W3C propagator, imported on first use (only code that traces needs it)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def context_from(traceparent: str | None, tracestate: str | None = None) -> Any:
    """An OpenTelemetry Context carrying a remote parent (None when there is none)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return propagator().extract(carrier)


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
    propagator().inject(carrier)
    if "traceparent" in carrier:
        return carrier["traceparent"], carrier.get("tracestate") or None
    return fallback_traceparent, fallback_tracestate
