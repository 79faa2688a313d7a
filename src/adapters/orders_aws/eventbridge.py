"""Lambda trigger: a command delivered by an EventBridge rule -> the service.

Configure the function's handler as ``orders_aws.eventbridge.handler``.

See :func:`orders_aws.shapes.command_from_eventbridge` for how ``detail`` maps to the
command CloudEvent. Outcomes follow the core's rule (:mod:`orders_core.application`), as for
SQS: a command that may succeed later raises, so Lambda's asynchronous retries (and the
function's on-failure destination, which receives the event itself) take over; a command
that can never succeed is sent with its content to ``ORDERS_POISON_QUEUE_URL`` and answered
``{"status": "rejected"}``, or, without that queue (or when sending fails), raised as
:class:`PoisonCommand` so the on-failure destination receives it: never silently dropped.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from orders_aws import observe
from orders_aws.bootstrap import Runtime, build_if_entrypoint, runtime
from orders_aws.shapes import command_from_eventbridge
from orders_core.application import Outcome, Principal, classify, event_key, reason

log = logging.getLogger("orders_aws.eventbridge")


class PoisonCommand(Exception):
    """A command that can never succeed, raised for the on-failure destination to keep."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entrypoint, on the process's runtime."""
    return handle(event, context, runtime())


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    with observe.invocation(context, "pubsub"):
        return _handle(event, context, rt)


def bus_principal(event: dict[str, Any], bus: str, context: Any = None) -> Principal:
    """The bus the command came through; IAM on that bus authorized the sender.

    EventBridge events name no bus, so the deployment says which one the rule listens on.
    The bus is in the function's own account (its ARN says which); the event's ``account``
    is the sender's, which differs for events from another account.
    """
    region = str(event.get("region", ""))
    arn = str(getattr(context, "invoked_function_arn", "") or "").split(":")
    account = arn[4] if len(arn) > 4 and arn[4] else str(event.get("account", ""))
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
                principal=bus_principal(event, rt.config.command_bus, context),
                idempotency_key=event_key(command.source, command.id),
                deadline=rt.deadline(context),
            )
    except Exception as error:
        if classify(error) is Outcome.RETRY:
            raise
        label = reason(error)
        if not _dead_letter(rt, event, label):
            raise PoisonCommand(label) from None
        log.warning("command rejected", extra={"eventId": event.get("id"), "problem": label})
        return {"status": "rejected", "problem": label}
    return {"status": "ok", "orderId": result.order_id, "replayed": result.replayed}


def _dead_letter(rt: Runtime, event: dict[str, Any], label: str) -> bool:
    url = rt.config.poison_queue_url
    if url is None:
        return False
    try:
        rt.sqs().send_message(
            QueueUrl=url,
            MessageBody=json.dumps(event, default=str),
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": label},
                "sourceEventId": {"DataType": "String", "StringValue": str(event.get("id"))},
            },
        )
    except Exception:  # raised instead, for the on-failure destination
        log.exception("could not send a poison command to %s", url)
        return False
    return True


build_if_entrypoint(__name__)
