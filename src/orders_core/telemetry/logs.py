"""JSON log lines carrying trace, correlation and order ids, and the cheap path for the one
line a request writes.

The formatter reads the current span only when the OpenTelemetry API is already loaded, so
logging never imports it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orders_core_correlation_id", default=None
)
"""The id that ties log lines of one request or record together (set by the adapter)."""

order_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orders_core_order_id", default=None
)
"""The order the current request or record acted on (set by the service, scoped by the
adapter), so the adapter's one log line per request can name it."""

_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def lean_log_records() -> None:
    """Stop ``logging`` collecting what :class:`JsonLogFormatter` never writes.

    For a composition root that owns the process's logging (the local CLI, a Lambda
    bootstrap), as the logging HOWTO's "Optimization" section suggests: looking up the
    caller's frame, thread and process names was a large share of a log line
    (docs/decisions/0007).
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


def log_line(
    logger: logging.Logger,
    message: str,
    fields: dict[str, Any],
    *,
    held: HeldLines | None = None,
) -> None:
    """``logger.info(message, extra=fields)`` for the one line per request, made cheap.

    When the logger's records would reach exactly one handler, a plain StreamHandler with
    :class:`JsonLogFormatter` (what the local CLI and the Lambda bootstrap install), the
    line is rendered and written under that handler's lock without a LogRecord: the same
    bytes for a fraction of the cost (docs/decisions/0007, bench/warm.py). Any other set-up
    (more handlers, pytest's caplog, a file or syslog handler) gets the ordinary
    ``logger.info``. Levels and ``logging.disable`` apply either way. On the fast path a
    line goes into ``held`` if given (its owner writes it later), else into the block of
    :func:`batched_log_lines` if one is open, else straight out.
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
    if held is None:
        held = _log_batch.get()
    if held is not None:
        held.add(handler, line + handler.terminator)
        return
    handler.acquire()
    try:
        handler.stream.write(line + handler.terminator)
        handler.stream.flush()
    except Exception:
        logger.info(message, extra=fields)  # logging's own error handling takes over
    finally:
        handler.release()


class HeldLines:
    """Log lines held for one write per handler (:meth:`flush`): one syscall, and one
    wake-up of whoever reads the stream, for many requests' lines."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: dict[logging.StreamHandler[Any], list[str]] = {}

    def add(self, handler: logging.StreamHandler[Any], text: str) -> None:
        self._lines.setdefault(handler, []).append(text)

    def __bool__(self) -> bool:
        return bool(self._lines)

    def flush(self) -> None:
        """Write what is held, in the order it came, and hold nothing."""
        lines, self._lines = self._lines, {}
        for handler, texts in lines.items():
            _write_lines(handler, "".join(texts))


_log_batch: contextvars.ContextVar[HeldLines | None] = contextvars.ContextVar(
    "orders_core_log_batch", default=None
)


@contextlib.contextmanager
def batched_log_lines() -> Iterator[None]:
    """Hold the lines :func:`log_line` writes in the block; write them in one go at its end.

    For a server loop that answers many requests per turn: one write (one syscall, one
    wake-up of whoever reads the stream) per turn instead of one per request raised the
    local server's throughput (docs/decisions/0006). Only the fast path's lines wait;
    anything logged through ``logging`` itself is written at once, so such a line can come
    before the request lines of its turn (every line has its own timestamp). Lines still
    held when the process dies are lost; the local server holds a turn's answers as long.
    """
    batch = HeldLines()
    token = _log_batch.set(batch)
    try:
        yield
    finally:
        _log_batch.reset(token)
        batch.flush()


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
