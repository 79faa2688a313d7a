"""Lambda trigger: the table's stream -> domain events -> EventBridge (the stream relay).

Configure the function's handler as ``orders_aws.stream.handler``.

Each INSERT/MODIFY of an order item carries the events of that change
(:mod:`orders_aws.item_events`); they are published through
:class:`~orders_aws.publisher.EventBridgePublisher`. REMOVE records (TTL expiry of
idempotency items) carry no events and are skipped.

What cannot be published now:

* a retryable failure (``InternalFailure``, ``ThrottlingException``, or the whole call
  failing) is retried a few times here, after the core relay's backoff
  (:func:`orders_core.application.retry_delay`), then its record is returned in
  ``batchItemFailures`` (by sequence number), so Lambda retries from it, in order;
* once a record is older than ``ORDERS_RELAY_GIVE_UP_SECONDS`` (5 h by default, below the
  mapping's maximum record age, itself below the stream's 24 h retention), or when
  EventBridge rejects an entry with a non-retryable code, or the record cannot be decoded,
  the relay sends the CloudEvent itself (the raw record if undecodable) to the queue at
  ``ORDERS_EVENTS_DLQ_URL`` and moves on. Lambda's own on-failure destination would get
  batch metadata only, which is why the relay does not leave these to it.

Without a DLQ configured, or when the DLQ cannot be written, the record is reported as a
failure instead: never dropped here.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from orders_aws import observe
from orders_aws.bootstrap import Runtime, build_if_entrypoint, runtime
from orders_aws.item_events import ORDER_PREFIX, events_from_stream_image
from orders_core import telemetry
from orders_core.application import Deadline, EventPublisher, PublishFailed, record_lag, retry_delay
from orders_core.domain import DomainEvent

log = logging.getLogger("orders_aws.relay")

ATTEMPTS: Final = 3
BACKOFF_BASE: Final = 0.2
"""Seconds before the first retry within an invocation (doubling, jittered); the deadline
caps every pause."""
UNREADABLE: Final = "UnreadableRecord"


@dataclass(eq=False)
class Pending:
    """One event to publish, or the ``raw`` record that could not be decoded; the stream
    record it came from, and its last failure."""

    sequence: str
    event: DomainEvent | None
    created: float | None
    reason: str = ""
    message: str = ""
    raw: str = ""

    def body(self) -> str:
        """What the DLQ receives: the CloudEvent, else the raw record (built only then)."""
        return self.raw if self.event is None else self.event.to_structured_json().decode()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entrypoint, on the process's runtime."""
    return handle(event, context, runtime())


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    with observe.invocation(context, "datasource", span_name="orders-stream process"):
        return _handle(event, context, rt)


def _is_order(keys: Any, rt: Runtime) -> bool:
    """Whether a record's ``Keys`` name an order item (what the mapping's filter passes)."""
    if not isinstance(keys, dict):
        return False
    key = keys.get(rt.design.partition_key)
    value = key.get("S") if isinstance(key, dict) else None
    return isinstance(value, str) and value.startswith(ORDER_PREFIX)


def _handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    deadline = rt.deadline(context)
    found: list[tuple[str, float | None, DomainEvent]] = []
    unreadable: list[Pending] = []
    for record in event.get("Records", []):
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        stream = record.get("dynamodb", {})
        sequence = str(stream.get("SequenceNumber", ""))
        created = _created(stream)
        try:
            image = stream.get("NewImage")
            if image is None and _is_order(stream.get("Keys"), rt):
                # KEYS_ONLY or OLD_IMAGE: an order's write whose events this cannot see
                raise ValueError("no NewImage: the stream must carry NEW_IMAGE or both")
            events = events_from_stream_image(image or {}, rt.design)
        except Exception as error:  # decoding can never succeed on a retry
            body = json.dumps(stream, default=str)
            unreadable.append(Pending(sequence, None, created, UNREADABLE, repr(error), body))
            continue
        found += [(sequence, created, e) for e in events]

    with telemetry.publishing([e for _, _, e in found], rt.config.event_bus) as outgoing:
        pending = [
            Pending(sequence, stamped, created)
            for (sequence, created, _), stamped in zip(found, outgoing, strict=True)
        ]
        retry, rejected = _publish(rt.publisher(), pending, deadline)
    now = datetime.now(UTC)
    unpublished = {id(item) for item in (*retry, *rejected)}
    record_lag(
        (e for (_, _, e), item in zip(found, pending, strict=True) if id(item) not in unpublished),
        now,
    )

    # Past the give-up age, a retryable failure is dead-lettered too; an entry the deadline
    # left untried (no reason yet) is not, or a backlog after an outage would be.
    give_up_after = rt.config.relay_give_up_seconds
    expired = [p for p in retry if p.reason and _age(p, now.timestamp()) >= give_up_after]
    retry = [p for p in retry if p not in expired]
    give_up = [*unreadable, *rejected, *expired]
    if retry:
        # Lambda retries from the lowest reported sequence number: what comes after it will
        # be seen again, so it is dead-lettered then (once), not now.
        floor = min((_order(p.sequence) for p in retry), default=0)
        later = [p for p in give_up if _order(p.sequence) >= floor]
        retry += later
        give_up = [p for p in give_up if p not in later]
    retry += _dead_letter(rt, give_up)
    if retry:
        log.warning("events not published; Lambda will retry", extra={"failedEntries": len(retry)})
    sequences = sorted({p.sequence for p in retry}, key=_order)
    return {"batchItemFailures": [{"itemIdentifier": s} for s in sequences]}


def _created(stream: dict[str, Any]) -> float | None:
    value = stream.get("ApproximateCreationDateTime")
    return float(value) if isinstance(value, int | float) else None


def _age(item: Pending, now: float) -> float:
    """Seconds since the record was written (0 when the record does not say)."""
    return 0.0 if item.created is None else now - item.created


def _order(sequence: str) -> int:
    return int(sequence) if sequence.isascii() and sequence.isdigit() else 0


def _dead_letter(rt: Runtime, items: list[Pending]) -> list[Pending]:
    """Send each item's CloudEvent (or raw record) to the DLQ; return those not sent."""
    if not items:
        return []
    url = rt.config.events_dlq_url
    if url is None:
        log.error(
            "events cannot be published and no ORDERS_EVENTS_DLQ_URL is set; Lambda will retry",
            extra={"failedEntries": len(items), "reasons": sorted({p.reason for p in items})},
        )
        return items
    unsent: list[Pending] = []
    for item in items:
        attributes = {
            "reason": item.reason or "Unknown",
            "errorMessage": (item.message or "-")[:256],
            "sequenceNumber": item.sequence or "-",
            "eventBusName": rt.config.event_bus,
        }
        try:
            rt.sqs().send_message(
                QueueUrl=url,
                MessageBody=item.body(),
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )
        except Exception as error:  # keep it on the stream rather than lose it
            log.warning("events DLQ not written", extra={"error": type(error).__name__})
            unsent.append(item)
        else:
            log.error(
                "event dead-lettered",
                extra={"sequenceNumber": item.sequence, "reason": item.reason},
            )
    return unsent


def _publish(
    publisher: EventPublisher, pending: list[Pending], deadline: Deadline
) -> tuple[list[Pending], list[Pending]]:
    """Publish everything it can; return (still failing retryably, rejected for good)."""
    rejected: list[Pending] = []
    for attempt in range(ATTEMPTS):
        if not pending or deadline.remaining() <= 0.2:
            break
        if attempt:
            pause = retry_delay(attempt, random.random(), base=BACKOFF_BASE)
            time.sleep(min(pause, max(0.0, deadline.remaining() / 4)))
        by_event = {id(p.event): p for p in pending}
        still: list[Pending] = []
        try:
            publisher.publish([p.event for p in pending if p.event is not None])
        except PublishFailed as failure:
            for unaccepted in failure.failed:
                item = by_event[id(unaccepted.event)]
                item.reason, item.message = unaccepted.code, unaccepted.message
                (still if unaccepted.retryable else rejected).append(item)
        except Exception as error:  # a publisher that could not say which: retry them all
            for item in pending:
                item.reason, item.message = type(error).__name__, str(error)
            still = pending
        pending = still
    return pending, rejected


build_if_entrypoint(__name__)
