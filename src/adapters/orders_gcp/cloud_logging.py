"""Log lines in the JSON shape Cloud Logging reads from a container's output (opt-in).

Cloud Run (and GKE, Cloud Functions) parse each JSON line on stdout/stderr into a log entry and
lift a few fields out of it: ``severity``, ``message``, ``time``,
``logging.googleapis.com/trace`` (``projects/<project>/traces/<trace id>``, which links the
line to its trace in Cloud Trace) and ``logging.googleapis.com/spanId``; ``stack_trace`` is what
Error Reporting reads. :class:`CloudLoggingFormatter` writes the lines the core's
:class:`~orders_core.telemetry.JsonLogFormatter` writes, with those fields renamed, and leaves
every other field as it is. The core's formatter and the AWS and local shapes do not change:
a runtime opts in by installing this one (:mod:`orders_gcp.cloud_run` does).

The trace id comes from the current span (with an SDK) or, for the access-log lines, from
the request's ``traceparent``: the core's formatter writes both as ``traceId``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Final

from orders_core import telemetry
from orders_core.telemetry import JsonLogFormatter

SEVERITY: Final = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
}
TRACE: Final = "logging.googleapis.com/trace"
SPAN: Final = "logging.googleapis.com/spanId"


class CloudLoggingFormatter(JsonLogFormatter):
    """The core's JSON lines as Cloud Logging entries. ``project`` names the trace's project
    (default: ``GOOGLE_CLOUD_PROJECT``); without one the trace field is the bare trace id."""

    _cloud_encoder = json.JSONEncoder(default=str, separators=(",", ":"))

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = (
            project if project is not None else os.environ.get("GOOGLE_CLOUD_PROJECT", "")
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
        entry: dict[str, Any] = json.loads(
            super().render(created, level, logger, message, fields, exc_info)
        )
        out: dict[str, Any] = {
            "severity": SEVERITY.get(entry.pop("level"), "DEFAULT"),
            "message": entry.pop("message"),
            "time": entry.pop("timestamp"),
        }
        trace_id = entry.get("traceId")
        if isinstance(trace_id, str):
            out[TRACE] = f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id
        span_id = entry.get("spanId")
        if isinstance(span_id, str):
            out[SPAN] = span_id
        if "stack" in entry:
            out["stack_trace"] = entry.pop("stack")
        out.update(entry)
        return self._cloud_encoder.encode(out)


def configure_logging(level: int = logging.INFO, *, project: str | None = None) -> None:
    """Cloud Logging lines on stderr for the whole process (a composition root's call)."""
    telemetry.lean_log_records()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CloudLoggingFormatter(project))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
