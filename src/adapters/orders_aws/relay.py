"""The stream relay: order items' stream records -> domain events -> EventBridge.

Each INSERT/MODIFY of an order item carries the events of that change (see
:mod:`orders_aws.dynamodb`). They go to the bus in chunks of 10 (the API's limit), each
entry's ``Detail`` the structured CloudEvent, ``Source`` and ``DetailType`` its source and
type. Entries that fail are retried (bounded by attempts and the deadline); records whose
events still failed are returned as ``batchItemFailures`` (by sequence number), so Lambda
retries from the first of them and nothing is lost. REMOVE records (TTL expiry of
idempotency items) carry no events and are skipped.
"""

from __future__ import annotations

import logging
import time
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
    found: list[tuple[str, DomainEvent]] = []  # (sequence number, event)
    for record in event.get("Records", []):
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        stream = record.get("dynamodb", {})
        sequence = str(stream.get("SequenceNumber", ""))
        found += [(sequence, e) for e in events_from_stream_image(stream.get("NewImage", {}))]

    with telemetry.publishing([e for _, e in found], rt.config.event_bus) as outgoing:
        pending = [
            (sequence, entry(stamped, rt.config.event_bus))
            for (sequence, _), stamped in zip(found, outgoing, strict=True)
        ]
        failed = _publish(rt, pending, deadline)
    now = datetime.now(UTC)
    unpublished = {id(item) for item in failed}
    for (_, domain_event), item in zip(found, pending, strict=True):
        if id(item) not in unpublished:
            telemetry.METRICS.relay_lag((now - domain_event.time).total_seconds())
    if failed:
        log.warning("events not published; Lambda will retry", extra={"failedEntries": len(failed)})
    sequences = sorted({seq for seq, _ in failed}, key=lambda s: int(s) if s.isdigit() else 0)
    return {"batchItemFailures": [{"itemIdentifier": s} for s in sequences]}


def _publish(
    rt: Runtime, pending: list[tuple[str, dict[str, Any]]], deadline: Any
) -> list[tuple[str, dict[str, Any]]]:
    """Publish everything it can; return what is still unpublished."""
    for attempt in range(ATTEMPTS):
        if not pending or deadline.remaining() <= 0.2:
            break
        if attempt:
            time.sleep(min(0.1 * 2**attempt, max(0.0, deadline.remaining() / 4)))
        still: list[tuple[str, dict[str, Any]]] = []
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            try:
                response = rt.events().put_events(Entries=[e for _, e in chunk])  # type: ignore[misc]
            except Exception as error:  # the whole call failed: retry the whole chunk
                log.warning("PutEvents failed", extra={"error": type(error).__name__})
                still.extend(chunk)
                continue
            if response.get("FailedEntryCount", 0):
                for item, result in zip(chunk, response["Entries"], strict=True):
                    if result.get("ErrorCode"):
                        still.append(item)
        pending = still
    return pending
