"""JSON logs for Lambda: one line per record, with the request id when Lambda gives one."""

from __future__ import annotations

import logging
import os
import sys

from orders_core.telemetry import JsonLogFormatter, lean_log_records


def configure() -> None:
    """Replace Lambda's default handler with the JSON formatter (idempotent)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers):
        return
    from orders_aws.observe import LambdaContextFilter

    lean_log_records()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(LambdaContextFilter())
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
