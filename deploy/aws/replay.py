"""Replay dead-lettered events: the events DLQ's CloudEvents back onto the bus.

    python -m deploy.aws.replay --queue-url URL [--bus NAME] [--max 1000] [--dry-run]

The relay sends an event it could not publish to the events DLQ (``EventsDlqUrl`` in the
stack outputs) with the structured CloudEvent as the message body and the bus it was meant
for in the ``eventBusName`` attribute. This reads the queue, publishes each CloudEvent as the
relay would have (``Source``/``DetailType`` from the event, ``Detail`` the event itself) and
deletes a message only once EventBridge has accepted its event. Messages that are not
CloudEvents (``reason=UnreadableRecord``: a stream record the relay could not decode) and
events EventBridge rejects again stay in the queue, visible again at the end, for a person to
look at. Consumers see a replayed event with its original ``id``: they deduplicate as for any
redelivery. Needs AWS credentials for the queue and the bus (``sqs:ReceiveMessage``,
``sqs:DeleteMessage``, ``sqs:ChangeMessageVisibility``, ``events:PutEvents``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CHUNK = 10


@dataclass
class Tally:
    replayed: int = 0
    not_events: int = 0
    rejected: int = 0
    kept: list[str] = field(default_factory=list)  # receipt handles to make visible again


def cloudevent_entry(body: str, bus: str | None) -> dict[str, Any] | None:
    """The PutEvents entry for a dead-lettered CloudEvent, or None if the body is not one."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or not {"specversion", "id", "source", "type"} <= set(event):
        return None
    entry: dict[str, Any] = {
        "Source": str(event["source"]),
        "DetailType": str(event["type"]),
        "Detail": body,
        "EventBusName": bus,
    }
    if isinstance(event.get("time"), str):
        # Unparseable: EventBridge then stamps the time it receives the event.
        with contextlib.suppress(ValueError):
            entry["Time"] = datetime.fromisoformat(event["time"])
    return entry


def replay(
    sqs: Any, events: Any, queue_url: str, bus: str | None, limit: int, dry_run: bool
) -> Tally:
    tally = Tally()
    seen = 0
    while seen < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - seen),
            WaitTimeSeconds=1,
            VisibilityTimeout=120,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        seen += len(messages)
        batch: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for message in messages:
            attributes = message.get("MessageAttributes", {})
            target = bus or attributes.get("eventBusName", {}).get("StringValue")
            entry = cloudevent_entry(message["Body"], target)
            if entry is None or not target:
                tally.not_events += 1
                tally.kept.append(message["ReceiptHandle"])
            else:
                batch.append((message, entry))
        if dry_run:
            for _, entry in batch:
                print(
                    f"would publish {json.loads(entry['Detail'])['id']} to {entry['EventBusName']}"
                )
            tally.kept += [m["ReceiptHandle"] for m, _ in batch]
            continue
        for start in range(0, len(batch), CHUNK):
            chunk = batch[start : start + CHUNK]
            answer = events.put_events(Entries=[e for _, e in chunk])
            for (message, _), result in zip(chunk, answer["Entries"], strict=True):
                if result.get("ErrorCode"):
                    tally.rejected += 1
                    tally.kept.append(message["ReceiptHandle"])
                    print(f"rejected again: {result['ErrorCode']} {result.get('ErrorMessage', '')}")
                else:
                    tally.replayed += 1
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    for handle in tally.kept:  # let a person (or the next run) see them now
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.aws.replay", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--queue-url", required=True, help="the events DLQ (output EventsDlqUrl)")
    parser.add_argument("--bus", help="event bus (default: each message's eventBusName)")
    parser.add_argument("--max", type=int, default=1000, help="messages to read at most")
    parser.add_argument("--dry-run", action="store_true", help="print, publish nothing")
    args = parser.parse_args(argv)

    import boto3

    tally = replay(
        boto3.client("sqs"),
        boto3.client("events"),
        args.queue_url,
        args.bus,
        args.max,
        args.dry_run,
    )
    print(
        f"replayed {tally.replayed}, rejected again {tally.rejected}, "
        f"not CloudEvents (left in the queue) {tally.not_events}"
    )
    return 1 if tally.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
