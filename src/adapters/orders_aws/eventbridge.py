"""A command delivered by an EventBridge rule -> the service.

See :func:`orders_aws.events.command_from_eventbridge` for how ``detail`` maps to the
command CloudEvent. A command that can never succeed is logged and answered with
``{"status": "rejected"}``; a transient failure raises, so Lambda's asynchronous retries
(and the function's on-failure destination) take over.
"""

from __future__ import annotations

import logging
from typing import Any

from orders_aws import observe
from orders_aws.bootstrap import Runtime
from orders_aws.events import command_from_eventbridge
from orders_core.errors import RequestError
from orders_core.idempotency import event_key
from orders_core.security import Principal

log = logging.getLogger("orders_aws.eventbridge")


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    with observe.invocation(context, "pubsub"):
        return _handle(event, context, rt)


def bus_principal(event: dict[str, Any], bus: str) -> Principal:
    """The bus the command came through (EventBridge events name no bus, so the deployment
    says which one the rule listens on); IAM on that bus authorized the sender."""
    region, account = str(event.get("region", "")), str(event.get("account", ""))
    return Principal.service(f"arn:aws:events:{region}:{account}:event-bus/{bus}")


def _handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    try:
        command = command_from_eventbridge(event)
        with observe.record_span(
            f"process {command.type}",
            command.traceparent,
            command.tracestate,
            {"messaging.system": "aws_eventbridge", "messaging.message.id": str(event.get("id"))},
        ):
            result = rt.service.handle(
                command,
                principal=bus_principal(event, rt.config.command_bus),
                idempotency_key=event_key(command.source, command.id),
                deadline=rt.deadline(context),
            )
    except RequestError as error:
        log.warning("command rejected", extra={"eventId": event.get("id"), "problem": error.slug})
        return {"status": "rejected", "problem": error.slug}
    return {"status": "ok", "orderId": result.order_id, "replayed": result.replayed}
