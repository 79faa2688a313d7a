"""Lambda entrypoint: the HTTP API (payload format 2.0) -> the core's HTTP binding.

Configure the function's handler as ``orders_aws.http_handler.handler``. The runtime is built
once, in the init phase, and reused by every warm invocation.
"""

from __future__ import annotations

from typing import Any

from orders_aws import http_api
from orders_aws.bootstrap import runtime

_RT = runtime()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return http_api.handle(event, context, _RT)
