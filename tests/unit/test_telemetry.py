"""Trace-context parsing and the JSON log formatter (OpenTelemetry API only, no SDK)."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from orders_core.telemetry import (
    JsonLogFormatter,
    correlation_id,
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
