"""SQS batches of command CloudEvents -> the service, with partial batch responses.

Answers with ``batchItemFailures`` (the function needs ``ReportBatchItemFailures``):

* transient failures (a lost race, the table throttled, the deadline) are reported, so SQS
  redelivers just those records;
* a record that can never succeed (not a CloudEvent, invalid data, unknown order, bad
  transition, a reused key) is logged, sent to ``ORDERS_POISON_QUEUE_URL`` when set, and
  not reported: retrying it would only delay the rest of the queue;
* in a FIFO queue, every record after a reported one is reported too, to keep order.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from orders_aws import observe
from orders_aws.bootstrap import Runtime
from orders_aws.events import command_from_sqs_record
from orders_core import telemetry
from orders_core.errors import DeadlineExceeded, RequestError
from orders_core.idempotency import event_key
from orders_core.security import Principal

log = logging.getLogger("orders_aws.queue")


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    records = event.get("Records", [])
    producers = [_traceparent(r) for r in records]
    with observe.invocation(
        context, "pubsub", span_name="orders-commands process", links_from=producers
    ):
        return _handle(records, context, rt)


def _traceparent(record: dict[str, Any]) -> str | None:
    """The producer's trace context: the CloudEvent's extension, else the message attribute."""
    try:
        body = json.loads(record.get("body", ""))
        value = body.get("traceparent") if isinstance(body, dict) else None
    except ValueError:
        value = None
    if not value:
        value = ((record.get("messageAttributes") or {}).get("traceparent") or {}).get(
            "stringValue"
        )
    return telemetry.valid_traceparent(value)


def _handle(records: list[dict[str, Any]], context: Any, rt: Runtime) -> dict[str, Any]:
    deadline = rt.deadline(context)
    failures: list[dict[str, str]] = []
    for record in records:
        telemetry.order_id.set(None)  # one record's order never labels the next one's lines
        message_id = str(record.get("messageId", ""))
        fifo = str(record.get("eventSourceARN", "")).endswith(".fifo")
        if failures and fifo:
            failures.append({"itemIdentifier": message_id})
            continue
        try:
            command = command_from_sqs_record(record)
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
                result = rt.service.handle(
                    command,
                    # The queue is the principal: IAM on the queue authorized the sender.
                    principal=Principal.service(str(record.get("eventSourceARN") or "aws:sqs")),
                    idempotency_key=event_key(command.source, command.id),
                    deadline=deadline,
                )
        except RequestError as error:
            log.warning(
                "poison record dropped",
                extra={"messageId": message_id, "problem": error.slug, "status": error.status},
            )
            _dead_letter(rt, record, error.slug)
        except DeadlineExceeded:
            failures.append({"itemIdentifier": message_id})
        except Exception as error:  # transient or unknown: let SQS redeliver this record
            log.warning(
                "record failed; SQS will redeliver it",
                extra={"messageId": message_id, "error": type(error).__name__},
            )
            failures.append({"itemIdentifier": message_id})
        else:
            log.info(
                "record processed",
                extra={
                    "messageId": message_id,
                    "orderId": result.order_id,
                    "replayed": result.replayed,
                },
            )
    return {"batchItemFailures": failures}


def _dead_letter(rt: Runtime, record: dict[str, Any], reason: str) -> None:
    url = rt.config.poison_queue_url
    if url is None:
        return
    rt.sqs().send_message(
        QueueUrl=url,
        MessageBody=str(record.get("body", "")),
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason},
            "sourceMessageId": {"DataType": "String", "StringValue": str(record.get("messageId"))},
        },
    )
