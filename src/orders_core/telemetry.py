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
import functools
import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from opentelemetry import trace as trace  # re-exported: adapters share the lazy import
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
else:

    class _LazyTrace(ModuleType):
        """``opentelemetry.trace``, imported when first used: the import is ~18 ms of a
        cold start that traces nothing (bench/cold_start.py, ``-X importtime``)."""

        def __getattr__(self, name: str) -> Any:
            from opentelemetry import trace as module

            globals()["trace"] = module  # from now on, the module itself
            return getattr(module, name)

    trace = _LazyTrace("opentelemetry.trace")

TRACER_NAME: Final = "orders_core"
_TRACEPARENT_RE: Final = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_MAX_TRACESTATE: Final = 512

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orders_core_correlation_id", default=None
)
"""The id that ties log lines of one request or record together (set by the adapter)."""

order_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orders_core_order_id", default=None
)
"""The order the current request or record acted on (set by the service, scoped by the
adapter), so the adapter's one log line per request can name it."""


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


def _installed(provider: object) -> bool:
    """A provider someone installed (an SDK's), not the API's own proxy or no-op one."""
    return not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


_RECHECK_SECONDS: Final = 1.0


class _ProviderCheck:
    """Whether someone installed an SDK provider behind one OpenTelemetry API module.

    The API's lookup reads the environment on every call; called a few times per command it
    cost ~15% of a warm invocation under the profiler. A yes is final (providers cannot be
    uninstalled); a no is re-checked at most once a second, or at once after
    :meth:`recheck`. Nobody can have installed a provider without importing the API first,
    so while the module is not loaded the answer is no, and it stays unloaded.
    """

    def __init__(self, module: str, getter: str) -> None:
        self.module = module
        self.getter = getter
        self.installed = False
        self._checked = float("-inf")

    def __call__(self) -> bool:
        if self.installed:
            return True
        now = time.monotonic()
        if now - self._checked >= _RECHECK_SECONDS:
            self._checked = now
            api = sys.modules.get(self.module)
            self.installed = api is not None and _installed(getattr(api, self.getter)())
        return self.installed

    def recheck(self) -> None:
        self._checked = float("-inf")


_TRACES = _ProviderCheck("opentelemetry.trace", "get_tracer_provider")
_METRICS = _ProviderCheck("opentelemetry.metrics", "get_meter_provider")


def sdk_configured() -> bool:
    """True once a runtime has installed a real TracerProvider (the API's default is a proxy)."""
    return _TRACES()


@functools.cache
def _propagator() -> TraceContextTextMapPropagator:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def sdk_installed_now() -> None:
    """Tell :func:`sdk_configured` a provider was just installed (no waiting for a re-check)."""
    _TRACES.recheck()
    _METRICS.recheck()


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
    _propagator().inject(carrier)
    if "traceparent" in carrier:
        return carrier["traceparent"], carrier.get("tracestate") or None
    return fallback_traceparent, fallback_tracestate


_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def lean_log_records() -> None:
    """Stop ``logging`` collecting what :class:`JsonLogFormatter` never writes.

    For a composition root that owns the process's logging (the local CLI, a Lambda
    bootstrap), as the logging HOWTO's "Optimization" section suggests: looking up the
    caller's frame, thread and process names was ~20% of a log line here.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with trace id, span id and correlation id.

    Fields passed with ``extra=`` are included; adapters use that for ``orderId``,
    ``commandType`` and the like. Message arguments are formatted, never the request body.
    """

    _encoder = json.JSONEncoder(default=str, separators=(",", ":"))
    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        extra = {
            key: fields[key]
            for key in sorted(fields.keys() - _STANDARD_ATTRS)  # a stable order, cheaply
            if not key.startswith("_")
        }
        return self.render(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            extra,
            record.exc_info,
        )

    def render(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: Mapping[str, Any],
        exc_info: Any = None,
    ) -> str:
        """The line for a record's parts (:func:`log_line` calls it without a record)."""
        entry: dict[str, Any] = {
            "timestamp": self._timestamp(created),
            "level": level,
            "logger": logger,
            "message": message,
        }
        api = sys.modules.get("opentelemetry.trace")  # not imported: no span can be current
        # An empty context holds no span: the usual case when something else (FastAPI does)
        # imported the API but nothing traces. Checking costs less than the span lookup.
        if api is not None and (context := sys.modules["opentelemetry.context"].get_current()):
            span_context = api.get_current_span(context).get_span_context()
            if span_context.is_valid:
                entry["traceId"] = api.format_trace_id(span_context.trace_id)
                entry["spanId"] = api.format_span_id(span_context.span_id)
        cid = correlation_id.get()
        if cid is not None:
            entry["correlationId"] = cid
        oid = order_id.get()
        if oid is not None and "orderId" not in fields:
            entry["orderId"] = oid
        entry.update(fields)
        if exc_info and exc_info[0] is not None:
            # Logs are for operators: the type is kept, the traceback too, responses never.
            entry["error"] = exc_info[0].__name__
            entry["stack"] = self.formatException(exc_info)
        return self._encoder.encode(entry)

    def _timestamp(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds; the date and time part is formatted once a
        second (a log line per request made ``isoformat`` a visible cost)."""
        second = int(created)
        if self._second[0] != second:
            stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, stamp)
        millis = min(999, int((created - second) * 1000))
        return f"{self._second[1]}.{millis:03d}+00:00"


def log_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """``logger.info(message, extra=fields)`` for the one line per request, made cheap.

    When the logger's records would reach exactly one handler, a plain StreamHandler with
    :class:`JsonLogFormatter` (what the local CLI and the Lambda bootstrap install), the
    line is rendered and written under that handler's lock without a LogRecord: the same
    bytes for ~1/4 of the cost (37 us in a warm Lambda invocation, bench/warm.py). Any
    other set-up (more handlers, pytest's caplog, a file or syslog handler) gets the
    ordinary ``logger.info``. Levels and ``logging.disable`` apply either way.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _sole_json_handler(logger)
    if handler is None:
        logger.info(message, extra=fields)
        return
    assert isinstance(handler.formatter, JsonLogFormatter)
    extra = fields
    for log_filter in handler.filters:
        extra = {**extra, **log_filter.fields()}  # type: ignore[union-attr]
    line = handler.formatter.render(time.time(), "INFO", logger.name, message, extra)
    batch = _log_batch.get()
    if batch is not None:
        batch.setdefault(handler, []).append(line + handler.terminator)
        return
    handler.acquire()
    try:
        handler.stream.write(line + handler.terminator)
        handler.stream.flush()
    except Exception:
        logger.info(message, extra=fields)  # logging's own error handling takes over
    finally:
        handler.release()


_log_batch: contextvars.ContextVar[dict[logging.StreamHandler[Any], list[str]] | None] = (
    contextvars.ContextVar("orders_core_log_batch", default=None)
)


@contextlib.contextmanager
def batched_log_lines() -> Iterator[None]:
    """Hold the lines :func:`log_line` writes in the block; write them in one go at its end.

    For a server loop that answers many requests per turn: one write (one syscall, one
    wake-up of whoever reads the stream) per turn instead of one per request was 1.10x the
    local server's throughput (docs/decisions/0006). Only the fast path's lines wait;
    anything logged through ``logging`` itself is written at once, so such a line can come
    before the request lines of its turn (every line has its own timestamp). Lines still
    held when the process dies are lost; the local server holds a turn's answers as long.
    """
    batch: dict[logging.StreamHandler[Any], list[str]] = {}
    token = _log_batch.set(batch)
    try:
        yield
    finally:
        _log_batch.reset(token)
        for handler, lines in batch.items():
            _write_lines(handler, "".join(lines))


def _write_lines(handler: logging.StreamHandler[Any], text: str) -> None:
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.stream.flush()
    except Exception:
        handler.handleError(logging.makeLogRecord({"msg": "batched log lines"}))
    finally:
        handler.release()


def _sole_json_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if (
        type(handler) is not logging.StreamHandler
        or not isinstance(handler.formatter, JsonLogFormatter)
        or handler.level > logging.INFO
        or not all(hasattr(f, "fields") for f in handler.filters)
    ):
        return None
    return handler


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
        parent = _propagator().extract(carrier)
    name = f"{method} {route}" if route else method
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
    if route:
        attributes["http.route"] = route
    with tracer().start_as_current_span(
        name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def context_from(traceparent: str | None, tracestate: str | None = None) -> Any:
    """An OpenTelemetry Context carrying a remote parent (None when there is none)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _propagator().extract(carrier)


def link_to(traceparent: str | None) -> list[trace.Link]:
    """A span link to the producer of a batch record (for batch consumers)."""
    context = trace.get_current_span(context_from(traceparent)).get_span_context()
    return [trace.Link(context)] if context.is_valid else []


# -- metrics ------------------------------------------------------------------------------


class Metrics:
    """The instruments orders-core records, on the OpenTelemetry metrics API.

    ==============================  =========  =============================================
    name                            kind       meaning
    ==============================  =========  =============================================
    ``orders.<metric>``             counter    successes of a command, by the ``metric`` the
                                               command table gives it (``orders.created``,
                                               ``.confirmed``, ``.cancelled``, ``.fulfilled``)
    ``orders.idempotent_replays``   counter    answers replayed from an idempotency record
    ``orders.conflicts``            counter    refused for state (``orders.conflict``: version,
                                               transition, precondition, key-reused)
    ``orders.command.duration``     histogram  seconds per command (``orders.command.type``)
    ``orders.relay.lag``            histogram  seconds from commit to publish
    ``orders.outbox.undelivered``   gauge      committed events not yet published (local)
    ==============================  =========  =============================================

    Instruments are created on first use through the API's proxy meter, so they bind to a
    MeterProvider a runtime installs later; with none, recording is skipped entirely.
    """

    def __init__(self) -> None:
        self._instruments: dict[str, Any] | None = None
        self._meter: Any = None

    def _get(self) -> dict[str, Any] | None:
        if self._instruments is None:
            if not _METRICS():
                return None
            from opentelemetry import metrics

            meter = metrics.get_meter(TRACER_NAME)
            self._meter = meter
            self._instruments = {}
            self._instruments["idempotent_replays"] = meter.create_counter(
                "orders.idempotent_replays", unit="{request}"
            )
            self._instruments["conflicts"] = meter.create_counter(
                "orders.conflicts", unit="{request}"
            )
            self._instruments["duration"] = meter.create_histogram(
                "orders.command.duration", unit="s"
            )
            self._instruments["relay_lag"] = meter.create_histogram("orders.relay.lag", unit="s")
        return self._instruments

    def command(
        self,
        command_type: str,
        seconds: float,
        *,
        counter: str | None,
        replayed: bool,
        conflict: str | None,
    ) -> None:
        """One command's figures; ``counter`` is its table ``metric`` when it succeeded."""
        instruments = self._get()
        if instruments is None:
            return
        instruments["duration"].record(seconds, {"orders.command.type": command_type})
        if replayed:
            instruments["idempotent_replays"].add(1, {"orders.command.type": command_type})
        elif counter is not None:
            name = f"counter:{counter}"
            if name not in instruments:  # created on first use: any table's metric counts
                instruments[name] = self._meter.create_counter(f"orders.{counter}", unit="{order}")
            instruments[name].add(1)
        if conflict is not None:
            instruments["conflicts"].add(1, {"orders.conflict": conflict})

    def relay_lag(self, seconds: float) -> None:
        instruments = self._get()
        if instruments is not None:
            instruments["relay_lag"].record(max(0.0, seconds))

    def observe_undelivered(self, count: Any) -> None:
        """Register ``count()`` as the undelivered-outbox gauge (local runtime)."""
        from opentelemetry import metrics
        from opentelemetry.metrics import CallbackOptions, Observation

        def callback(_: CallbackOptions) -> list[Observation]:
            return [Observation(int(count()))]

        metrics.get_meter(TRACER_NAME).create_observable_gauge(
            "orders.outbox.undelivered", callbacks=[callback], unit="{event}"
        )


METRICS = Metrics()


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
        _propagator().inject(carrier, context=trace.set_span_in_context(span))
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
