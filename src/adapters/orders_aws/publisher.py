"""Domain events -> EventBridge ``PutEvents``, behind the core's publisher port.

Each entry's ``Detail`` is the structured CloudEvent, ``Source`` and ``DetailType`` its
source and type. Entries go in calls of at most 10 entries and 256 KB (PutEvents' limits,
entry sizes counted as EventBridge documents). Entries EventBridge does not accept are
reported in one :class:`~orders_core.application.PublishFailed` after every call was tried:

* an entry with ``ErrorCode`` ``InternalFailure`` or ``ThrottlingException``, or in a call
  that failed as a whole (after the SDK's own retries): retryable;
* an entry with any other code, or too large to send at all: not retryable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from orders_core.application import EventPublisher, PublishFailed, Unaccepted
from orders_core.domain import DomainEvent

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

log = logging.getLogger("orders_aws.publisher")

MAX_ENTRIES: Final = 10
MAX_REQUEST_BYTES: Final = 256 * 1024
RETRYABLE: Final = frozenset({"InternalFailure", "ThrottlingException"})
"""PutEvents entry error codes worth retrying (EventBridge's PutEventsResultEntry docs); every
other code is permanent for that entry."""
TOO_LARGE: Final = "EntryTooLarge"
"""Our code for an entry over the request limit on its own: no call can carry it."""
_TIME_BYTES: Final = 14
"""What an entry's ``Time`` counts for in EventBridge's size calculation."""


def entry(event: DomainEvent, bus: str) -> dict[str, Any]:
    """The PutEvents entry of one event."""
    return {
        "Source": event.source,
        "DetailType": event.type,
        "Detail": event.to_structured_json().decode(),
        "EventBusName": bus,
        "Time": event.time,
    }


def entry_size(item: dict[str, Any]) -> int:
    """Bytes an entry counts for against the request limit (EventBridge's
    "Calculating PutEvents event entry size")."""
    return (
        _TIME_BYTES
        + len(item["Source"].encode())
        + len(item["DetailType"].encode())
        + len(item["Detail"].encode())
        + sum(len(r.encode()) for r in item.get("Resources", ()))
    )


class EventBridgePublisher(EventPublisher):
    """Publishes to one bus. The client is injected (the Lambda runtime's, built once)."""

    def __init__(self, client: EventBridgeClient, bus: str) -> None:
        self.client = client
        self.bus = bus

    def publish(self, events: Sequence[DomainEvent]) -> None:
        failed: list[Unaccepted] = []
        entries = [(event, entry(event, self.bus)) for event in events]
        for chunk in self._chunks(entries, failed):
            failed += self._put(chunk)
        if failed:
            raise PublishFailed(failed)

    @staticmethod
    def _chunks(
        entries: list[tuple[DomainEvent, dict[str, Any]]], failed: list[Unaccepted]
    ) -> Iterator[list[tuple[DomainEvent, dict[str, Any]]]]:
        """Calls of at most 10 entries and 256 KB, in order; an entry over the limit on its
        own goes to ``failed`` instead."""
        chunk: list[tuple[DomainEvent, dict[str, Any]]] = []
        size = 0
        for event, item in entries:
            bytes_ = entry_size(item)
            if bytes_ > MAX_REQUEST_BYTES:
                failed.append(Unaccepted(event, TOO_LARGE, f"{bytes_} bytes", retryable=False))
                continue
            if chunk and (len(chunk) == MAX_ENTRIES or size + bytes_ > MAX_REQUEST_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append((event, item))
            size += bytes_
        if chunk:
            yield chunk

    def _put(self, chunk: list[tuple[DomainEvent, dict[str, Any]]]) -> list[Unaccepted]:
        try:
            response = self.client.put_events(Entries=[item for _, item in chunk])  # type: ignore[misc]
        except Exception as error:  # the whole call failed: every entry may succeed later
            log.warning("PutEvents failed", extra={"error": type(error).__name__})
            return [Unaccepted(e, type(error).__name__, str(error)) for e, _ in chunk]
        if not response.get("FailedEntryCount", 0):
            return []
        failed = []
        for (event, _), result in zip(chunk, response["Entries"], strict=True):
            code = result.get("ErrorCode")
            if code:
                message = str(result.get("ErrorMessage", ""))
                failed.append(Unaccepted(event, code, message, retryable=code in RETRYABLE))
        return failed
