"""Lambda entrypoint: the table's stream -> domain events -> EventBridge PutEvents.

Configure the function's handler as ``orders_aws.relay_handler.handler``. The runtime is built
once, in the init phase, and reused by every warm invocation.
"""

from __future__ import annotations

from typing import Any

from orders_aws import relay
from orders_aws.bootstrap import runtime

_RT = runtime()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return relay.handle(event, context, _RT)
