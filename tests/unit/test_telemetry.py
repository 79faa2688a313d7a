"""Trace-context parsing and the JSON log formatter (OpenTelemetry API only, no SDK)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from orders_core.telemetry import (
    JsonLogFormatter,
    batched_log_lines,
    correlation_id,
    log_line,
    valid_traceparent,
    valid_tracestate,
)

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TP, TP),
        (f"  {TP} ", TP),
        (None, None),
        ("", None),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("garbage", None),
    ],
)
def test_traceparent_validation(value: str | None, expected: str | None) -> None:
    assert valid_traceparent(value) == expected


def test_tracestate_limits() -> None:
    assert valid_tracestate("a=b") == "a=b"
    assert valid_tracestate("x" * 513) is None
    assert valid_tracestate("\u00e9=1") is None


def record(message: str, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("test")
    return logger.makeRecord("test", logging.INFO, __file__, 1, message, (), None, extra=extra)


def test_log_lines_are_json_with_trace_and_correlation_ids() -> None:
    context = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(1),
    )
    token = correlation_id.set("req-42")
    try:
        with trace.use_span(NonRecordingSpan(context)):
            line = JsonLogFormatter().format(record("order placed", orderId="o-1"))
    finally:
        correlation_id.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "order placed"
    assert entry["level"] == "INFO"
    assert entry["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["spanId"] == "00f067aa0ba902b7"
    assert entry["correlationId"] == "req-42"
    assert entry["orderId"] == "o-1"
    assert entry["timestamp"].endswith("+00:00")


def test_log_lines_without_a_span_have_no_trace_fields() -> None:
    entry = json.loads(JsonLogFormatter().format(record("idle")))
    assert "traceId" not in entry
    assert "correlationId" not in entry


class _Fields(logging.Filter):
    def fields(self) -> dict[str, object]:
        return {"requestId": "r-1"}

    def filter(self, record: logging.LogRecord) -> bool:
        record.requestId = "r-1"
        return True


@pytest.fixture
def json_logger(request: pytest.FixtureRequest) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(_Fields())
    logger = logging.getLogger(f"test.log_line.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, stream


def _without_time(line: str) -> dict[str, object]:
    entry = json.loads(line)
    del entry["timestamp"]
    return dict(entry)


def test_log_line_writes_what_logger_info_writes(
    json_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_logger
    token = correlation_id.set("c-9")
    try:
        logger.info("request", extra={"method": "POST", "status": 201})
        log_line(logger, "request", {"method": "POST", "status": 201})
    finally:
        correlation_id.reset(token)
    via_logging, direct = stream.getvalue().splitlines()
    assert _without_time(direct) == _without_time(via_logging)
    assert _without_time(direct)["requestId"] == "r-1"


def test_log_line_honours_levels(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    logger.setLevel(logging.WARNING)
    log_line(logger, "request", {"status": 201})
    assert stream.getvalue() == ""


def test_log_line_goes_through_logging_when_others_listen(
    json_logger: tuple[logging.Logger, io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    logger, stream = json_logger
    logger.propagate = True  # caplog's handler on the root now sees the records too
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_line(logger, "request", {"status": 201})
    # One record, seen by caplog (pytest may list it once per capturing handler).
    assert {(id(r), r.__dict__["status"]) for r in caplog.records} == {(id(caplog.records[0]), 201)}
    assert json.loads(stream.getvalue())["status"] == 201


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _sole_handler(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> logging.Handler:
    """pytest adds its capture handlers to non-propagating loggers during a test's call;
    batching is for the one-JSON-handler set-up, so take them off for these tests."""
    handler = logger.handlers[0]
    monkeypatch.setattr(logger, "handlers", [handler])
    return handler


def test_batched_lines_are_written_once_at_the_end_of_the_block(
    json_logger: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, _ = json_logger
    stream = _CountingStream()
    handler = _sole_handler(logger, monkeypatch)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    log_line(logger, "request", {"status": 200})
    unbatched = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    stream.writes = 0
    with batched_log_lines():
        for status in (201, 202, 203):
            log_line(logger, "request", {"status": status})
        assert stream.getvalue() == ""  # held
        logger.warning("through logging itself")  # not held
        assert stream.writes == 1
    lines = stream.getvalue().splitlines()
    assert stream.writes == 2
    assert [json.loads(line)["status"] for line in lines[1:]] == [201, 202, 203]
    assert json.loads(lines[0])["message"] == "through logging itself"
    assert _without_time(lines[1]).keys() == _without_time(unbatched).keys()


def test_batched_lines_are_written_when_the_block_raises(
    json_logger: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = json_logger
    _sole_handler(logger, monkeypatch)

    def turn() -> None:
        with batched_log_lines():
            log_line(logger, "request", {"status": 201})
            assert stream.getvalue() == ""
            raise KeyError("boom")

    with pytest.raises(KeyError):
        turn()
    assert json.loads(stream.getvalue())["status"] == 201
    log_line(logger, "request", {"status": 202})  # the batch is over: written at once
    assert json.loads(stream.getvalue().splitlines()[1])["status"] == 202
