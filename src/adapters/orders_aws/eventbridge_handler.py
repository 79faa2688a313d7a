"""Lambda entrypoint: a command CloudEvent delivered by an EventBridge rule.

Configure the function's handler as ``orders_aws.eventbridge_handler.handler``. The runtime is built
once, in the init phase, and reused by every warm invocation.
"""

from __future__ import annotations

from typing import Any

from orders_aws import eventbridge
from orders_aws.bootstrap import runtime

_RT = runtime()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return eventbridge.handle(event, context, _RT)
