"""Lambda entrypoint: SQS batches of command CloudEvents, with partial batch responses.

Configure the function's handler as ``orders_aws.queue_handler.handler``. The runtime is built
once, in the init phase, and reused by every warm invocation.
"""

from __future__ import annotations

from typing import Any

from orders_aws import sqs
from orders_aws.bootstrap import runtime

_RT = runtime()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sqs.handle(event, context, _RT)
