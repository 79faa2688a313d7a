"""Lambda trigger: SQS batches of command CloudEvents -> the service, with partial batch
responses. Configure the function's handler as ``orders_aws.sqs.handler``.

Answers with ``batchItemFailures`` (the function needs ``ReportBatchItemFailures``), by the
core's rule (:mod:`orders_core.application`):

* a command that may succeed later (its order not there yet, a transition out of order, a
  lost race, the table throttled, the deadline) is reported, so SQS redelivers just that
  record; the queue's redrive policy dead-letters it after its last receive;
* a command that can never succeed (not a CloudEvent, invalid data, unknown type, a reused
  key, a transition out of a terminal status) is sent with its body to
  ``ORDERS_POISON_QUEUE_URL`` and not reported. Without that queue, or when sending fails,
  it is reported instead, so the redrive policy dead-letters it: poison is never deleted;
* every step of a record runs inside that record's isolation: one odd record never fails
  its batch;
* in a FIFO queue, every record after a reported one is reported too, to keep order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from orders_aws import observe
from orders_aws.bootstrap import Runtime, build_if_entrypoint, runtime
from orders_aws.shapes import command_from_sqs_record
from orders_core import telemetry
from orders_core.application import (
    Command,
    Deadline,
    Outcome,
    Principal,
    classify,
    event_key,
    reason,
)

log = logging.getLogger("orders_aws.queue")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entrypoint, on the process's runtime."""
    return handle(event, context, runtime())


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    records = event.get("Records", []) if isinstance(event, Mapping) else []
    records = records if isinstance(records, list) else []
    producers = [_traceparent(r) for r in records]
    with observe.invocation(
        context, "pubsub", span_name="orders-commands process", links_from=producers
    ):
        return _handle(records, context, rt)


def _traceparent(record: Any) -> str | None:
    """The producer's trace context: the CloudEvent's extension, else the message attribute.

    Total: a link is a nicety, so any record, however odd, yields a value or None here and
    meets its real verdict in its own isolation.
    """
    try:
        body = json.loads(record.get("body", ""))
        value = body.get("traceparent") if isinstance(body, dict) else None
        if not isinstance(value, str):
            attribute = (record.get("messageAttributes") or {}).get("traceparent") or {}
            value = attribute.get("stringValue")
        return telemetry.valid_traceparent(value) if isinstance(value, str) else None
    except Exception:  # RecursionError, AttributeError, ValueError alike
        return None


def _handle(records: list[Any], context: Any, rt: Runtime) -> dict[str, Any]:
    deadline = rt.deadline(context)
    failures: list[dict[str, str]] = []
    for record in records:
        telemetry.order_id.set(None)  # one record's order never labels the next one's lines
        if not isinstance(record, Mapping):
            log.warning("record is not an object; nothing to report it by")
            continue
        message_id = str(record.get("messageId", ""))
        fifo = str(record.get("eventSourceARN", "")).endswith(".fifo")
        if failures and fifo:
            failures.append({"itemIdentifier": message_id})
            continue
        if not _process(record, message_id, rt, deadline):
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _process(record: Mapping[str, Any], message_id: str, rt: Runtime, deadline: Deadline) -> bool:
    """Run one record; False when SQS must deliver it again."""
    try:
        command = command_from_sqs_record(record)
        return _run(command, record, message_id, rt, deadline)
    except Exception as error:  # each record is isolated from the others
        return _settle(classify(error), error, record, message_id, rt)


def _run(
    command: Command, record: Mapping[str, Any], message_id: str, rt: Runtime, deadline: Deadline
) -> bool:
    with observe.record_span(
        f"process {command.type}",
        command.traceparent,
        command.tracestate,
        {
            "messaging.system": "aws_sqs",
            "messaging.message.id": message_id,
            "messaging.operation.type": "process",
        },
    ):
        try:
            result = rt.service.handle(
                command,
                # The queue is the principal: IAM on the queue authorized the sender.
                principal=Principal.service(str(record.get("eventSourceARN") or "aws:sqs")),
                idempotency_key=event_key(command.source, command.id),
                deadline=deadline,
            )
        except Exception as error:  # classified, never raised out of the batch
            return _settle(classify(error), error, record, message_id, rt)
    log.info(
        "record processed",
        extra={"messageId": message_id, "orderId": result.order_id, "replayed": result.replayed},
    )
    return True


def _settle(
    outcome: Outcome, error: BaseException, record: Mapping[str, Any], message_id: str, rt: Runtime
) -> bool:
    label = reason(error)
    if outcome is Outcome.RETRY:
        log.warning(
            "record failed; SQS will redeliver it", extra={"messageId": message_id, "error": label}
        )
        return False
    if _dead_letter(rt, record, label):
        log.warning(
            "poison record dead-lettered", extra={"messageId": message_id, "problem": label}
        )
        return True
    log.warning(
        "poison record left to the queue's redrive policy",
        extra={"messageId": message_id, "problem": label},
    )
    return False


def _dead_letter(rt: Runtime, record: Mapping[str, Any], reason: str) -> bool:
    """Send the record's body to the poison queue; False when there is none or it failed."""
    url = rt.config.poison_queue_url
    if url is None:
        return False
    try:
        rt.sqs().send_message(
            QueueUrl=url,
            MessageBody=str(record.get("body", "")) or "(empty body)",
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason},
                "sourceMessageId": {
                    "DataType": "String",
                    "StringValue": str(record.get("messageId")) or "(none)",
                },
            },
        )
    except Exception:  # the record stays on its queue instead
        log.exception("could not send a poison record to %s", url)
        return False
    return True


build_if_entrypoint(__name__)
