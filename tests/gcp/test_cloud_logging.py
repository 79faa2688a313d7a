"""Cloud Logging's JSON shape, opted into; the core's own shape unchanged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from orders_core import telemetry
from orders_core.telemetry import JsonLogFormatter
from orders_gcp.cloud_logging import TRACE, CloudLoggingFormatter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLoggingFormatter(project="demo-orders"))
    log = logging.getLogger("test.cloud_logging")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        yield log, stream
    finally:
        log.handlers.clear()
        log.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_has_severity_message_time_and_the_trace_field(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.warning("relay paused", extra={"traceId": TRACE_ID, "orderId": "o-1"})
    (line,) = lines(stream)
    assert line["severity"] == "WARNING"
    assert line["message"] == "relay paused"
    assert line["time"].endswith("+00:00")
    assert line[TRACE] == f"projects/demo-orders/traces/{TRACE_ID}"
    assert (line["orderId"], line["logger"]) == ("o-1", "test.cloud_logging")
    assert "level" not in line
    assert "timestamp" not in line


@pytest.mark.parametrize(
    ("level", "severity"),
    [(logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (logging.ERROR, "ERROR"),
     (logging.CRITICAL, "CRITICAL")],
)  # fmt: skip
def test_levels_map_to_severities(
    logger: tuple[logging.Logger, io.StringIO], level: int, severity: str
) -> None:
    log, stream = logger
    log.log(level, "x")
    assert lines(stream)[0]["severity"] == severity


def test_an_exception_is_a_stack_trace_for_error_reporting(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    (line,) = lines(stream)
    assert line["severity"] == "ERROR"
    assert "RuntimeError: boom" in line["stack_trace"]
    assert line["error"] == "RuntimeError"


def test_the_fast_access_log_path_writes_the_same_shape(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    telemetry.log_line(log, "request", {"status": 201, "traceId": TRACE_ID})
    (line,) = lines(stream)
    assert (line["severity"], line["message"], line["status"]) == ("INFO", "request", 201)
    assert line[TRACE].endswith(TRACE_ID)


def test_without_a_project_the_trace_field_is_the_bare_id() -> None:
    formatter = CloudLoggingFormatter(project="")
    line = json.loads(formatter.render(0.0, "INFO", "l", "m", {"traceId": TRACE_ID}))
    assert line[TRACE] == TRACE_ID


def test_the_cores_formatter_keeps_its_own_shape() -> None:
    line = json.loads(JsonLogFormatter().render(0.0, "INFO", "l", "m", {"traceId": TRACE_ID}))
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert "severity" not in line
    assert TRACE not in line
