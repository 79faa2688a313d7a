"""The stream relay: order items' stream records -> domain events -> EventBridge.

Each INSERT/MODIFY of an order item carries the events of that change (see
:mod:`orders_aws.dynamodb`). They go to the bus in chunks of 10 (the API's limit), each
entry's ``Detail`` the structured CloudEvent, ``Source`` and ``DetailType`` its source and
type. REMOVE records (TTL expiry of idempotency items) carry no events and are skipped.

What cannot be published now:

* a retryable failure (``InternalFailure``, ``ThrottlingException``, or the whole call
  failing) is retried a few times here, then its record is returned in
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
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from orders_aws import observe
from orders_aws.bootstrap import Runtime
from orders_aws.dynamodb import events_from_stream_image
from orders_core import telemetry
from orders_core.events import DomainEvent

log = logging.getLogger("orders_aws.relay")

CHUNK: Final = 10
ATTEMPTS: Final = 3
RETRYABLE: Final = frozenset({"InternalFailure", "ThrottlingException"})
"""PutEvents entry error codes worth retrying (EventBridge's PutEventsResultEntry docs); every
other code is permanent for that entry."""
DEFAULT_GIVE_UP_SECONDS: Final = 5 * 3600
UNREADABLE: Final = "UnreadableRecord"


@dataclass(frozen=True)
class DeadLetters:
    """Where and when the relay gives up on an event (read from the environment)."""

    url: str | None
    give_up_after: float = DEFAULT_GIVE_UP_SECONDS

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DeadLetters:
        env = dict(os.environ if env is None else env)
        raw = env.get("ORDERS_RELAY_GIVE_UP_SECONDS", "")
        give_up = float(raw) if raw.isascii() and raw.isdigit() else DEFAULT_GIVE_UP_SECONDS
        return cls(env.get("ORDERS_EVENTS_DLQ_URL") or None, give_up)


@dataclass(eq=False)
class Pending:
    """One entry to publish, the stream record it came from, and its last failure."""

    sequence: str
    entry: dict[str, Any]
    created: float | None
    reason: str = ""
    message: str = ""


def entry(event: DomainEvent, bus: str) -> dict[str, Any]:
    return {
        "Source": event.source,
        "DetailType": event.type,
        "Detail": event.to_structured_json().decode(),
        "EventBusName": bus,
        "Time": event.time,
    }


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    with observe.invocation(context, "datasource", span_name="orders-stream process"):
        return _handle(event, context, rt)


def _handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    deadline = rt.deadline(context)
    letters = DeadLetters.from_env()
    found: list[tuple[str, float | None, DomainEvent]] = []
    unreadable: list[Pending] = []
    for record in event.get("Records", []):
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        stream = record.get("dynamodb", {})
        sequence = str(stream.get("SequenceNumber", ""))
        created = _created(stream)
        try:
            events = events_from_stream_image(stream.get("NewImage", {}))
        except Exception as error:  # decoding can never succeed on a retry
            body = json.dumps(stream, default=str)
            unreadable.append(Pending(sequence, {"Detail": body}, created, UNREADABLE, repr(error)))
            continue
        found += [(sequence, created, e) for e in events]

    with telemetry.publishing([e for _, _, e in found], rt.config.event_bus) as outgoing:
        pending = [
            Pending(sequence, entry(stamped, rt.config.event_bus), created)
            for (sequence, created, _), stamped in zip(found, outgoing, strict=True)
        ]
        retry, rejected = _publish(rt, pending, deadline)
    now = datetime.now(UTC)
    unpublished = {id(item) for item in (*retry, *rejected)}
    for (_, _, domain_event), item in zip(found, pending, strict=True):
        if id(item) not in unpublished:
            telemetry.METRICS.relay_lag((now - domain_event.time).total_seconds())

    # Past the give-up age, a retryable failure is dead-lettered too; an entry the deadline
    # left untried (no reason yet) is not, or a backlog after an outage would be.
    expired = [p for p in retry if p.reason and _age(p, now.timestamp()) >= letters.give_up_after]
    retry = [p for p in retry if p not in expired]
    give_up = [*unreadable, *rejected, *expired]
    if retry:
        # Lambda retries from the lowest reported sequence number: what comes after it will
        # be seen again, so it is dead-lettered then (once), not now.
        floor = min((_order(p.sequence) for p in retry), default=0)
        later = [p for p in give_up if _order(p.sequence) >= floor]
        retry += later
        give_up = [p for p in give_up if p not in later]
    retry += _dead_letter(rt, letters, give_up)
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


def _dead_letter(rt: Runtime, letters: DeadLetters, items: list[Pending]) -> list[Pending]:
    """Send each item's CloudEvent (or raw record) to the DLQ; return those not sent."""
    if not items:
        return []
    if letters.url is None:
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
                QueueUrl=letters.url,
                MessageBody=item.entry["Detail"],
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
    rt: Runtime, pending: list[Pending], deadline: Any
) -> tuple[list[Pending], list[Pending]]:
    """Publish everything it can; return (still failing retryably, rejected for good)."""
    rejected: list[Pending] = []
    for attempt in range(ATTEMPTS):
        if not pending or deadline.remaining() <= 0.2:
            break
        if attempt:
            time.sleep(min(0.1 * 2**attempt, max(0.0, deadline.remaining() / 4)))
        still: list[Pending] = []
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            try:
                response = rt.events().put_events(Entries=[p.entry for p in chunk])  # type: ignore[misc]
            except Exception as error:  # the whole call failed: retry the whole chunk
                log.warning("PutEvents failed", extra={"error": type(error).__name__})
                for item in chunk:
                    item.reason, item.message = type(error).__name__, str(error)
                still.extend(chunk)
                continue
            if response.get("FailedEntryCount", 0):
                for item, result in zip(chunk, response["Entries"], strict=True):
                    code = result.get("ErrorCode")
                    if not code:
                        continue
                    item.reason, item.message = code, str(result.get("ErrorMessage", ""))
                    (still if code in RETRYABLE else rejected).append(item)
        pending = still
    return pending, rejected
