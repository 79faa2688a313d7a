"""The domain events an order item carries in its ``events`` attribute, out and back.

The table's stream is the outbox: the store writes each change's events into the order
item, and the relay decodes them from the stream record's ``NewImage``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orders_aws.table import DESIGN, TableDesign
from orders_core.domain import DomainEvent

ORDER_PREFIX = "ORDER#"
"""How an order item's partition key starts (the relay's stream filter keys on it too)."""


def events_attribute(body: bytes, events: tuple[DomainEvent, ...]) -> str:
    """The change's events, without ``data`` where it is the order's new state (it always is
    for our events): the item's ``body`` already holds it, and leaving it out keeps a 3-item
    order item under 1 KB, one write unit instead of two."""
    records = [event.to_record(with_data=event.data_json != body) for event in events]
    return json.dumps(records, separators=(",", ":"))


def events_from_stream_image(
    image: Mapping[str, Any], design: TableDesign = DESIGN
) -> list[DomainEvent]:
    """The domain events an order item's stream image carries ([] for other items)."""
    pk = image.get(design.partition_key, {}).get("S", "")
    if not pk.startswith(ORDER_PREFIX) or "events" not in image:
        return []
    body = json.loads(image["body"]["S"])
    return [
        DomainEvent.from_record({"data": body, **record})
        for record in json.loads(image["events"]["S"])
    ]
