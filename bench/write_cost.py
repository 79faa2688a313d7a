"""DynamoDB write capacity per command: our single-item design vs the common way.

    python bench/write_cost.py

Units are computed from the items each design writes with DynamoDB's documented sizing
rules (``orders_aws.dynamodb.write_units``: 1 unit per started KB, doubled in a transaction);
moto's ConsumedCapacity is not faithful. The order is a typical 3-item priced order.
"The common way" is how an idempotent handler is usually built (Powertools-style): put an
idempotency record IN_PROGRESS, write the order, update the record to COMPLETED with the
response, then publish to EventBridge (no DynamoDB write).

Ours also writes the customer index (``gsi1``, projection ALL) whenever the order has a
``customerId``: DynamoDB writes the index entry, of the item's size, as part of every write
to the item, and charges it like a table write. The bench's order has one, so the index
column applies to it; the seed request ``{"items": [...]}`` has none and writes no entry.
Reads are the store's strongly consistent ones on the command's path (1 read unit per item
under 4 KB): none for a create, the record and the derived order for a keyed create (one
BatchGetItem), the order for a transition.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/_child.py: each script runs with bench/ first on sys.path
from _child import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "adapters"))

from orders_aws.capacity import write_units
from orders_aws.dynamodb import DynamoDBStore
from orders_core.application import IdempotencyRecord, derived_order_id, event_for
from orders_core.domain import LineItem, Order, OrderStatus

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def order(order_id: str) -> Order:
    items = [
        LineItem(sku=f"sku-{i}", quantity=i + 1, unit_price=1999, currency="EUR") for i in range(3)
    ]
    return Order.place(order_id, items, "customer-42", NOW)


def ours(store: DynamoDBStore) -> dict[str, int]:
    plain = order("0123456789abcdef0123456789abcdef")
    created = store.items.order_item(plain, (event_for(plain, traceparent=TP),))
    created["commit"] = {"S": "0" * 32}  # the commit token every write carries
    keyed = order(derived_order_id(KEY))
    record = IdempotencyRecord(
        KEY, "f" * 64, 201, keyed.to_json(), keyed.order_id, 1, NOW + timedelta(hours=24)
    )
    keyed_item = store.items.order_item(keyed, (event_for(keyed, traceparent=TP),))
    keyed_item.update(store.items.embedded_record(record))
    keyed_item["commit"] = {"S": "0" * 32}
    confirmed = plain.transition(OrderStatus.CONFIRMED, NOW)
    after_confirm = store.items.order_item(confirmed, (event_for(confirmed, traceparent=TP),))
    cancelled = confirmed.transition(OrderStatus.CANCELLED, NOW)
    after_cancel = store.items.order_item(cancelled, (event_for(cancelled, traceparent=TP),))
    # UpdateItem is charged on the larger of the item before and after the update.
    return {
        "create": write_units(created),
        "create with Idempotency-Key": write_units(keyed_item),
        "confirm": max(write_units(created), write_units(after_confirm)),
        "cancel": max(write_units(after_confirm), write_units(after_cancel)),
    }


def common_way() -> dict[str, int]:
    """Idempotency record IN_PROGRESS -> order -> record COMPLETED (+ publish elsewhere)."""
    o = order("0123456789abcdef0123456789abcdef")
    body = o.to_json().decode()
    in_progress: dict[str, Any] = {
        "id": {"S": f"orders#{KEY}"},
        "status": {"S": "INPROGRESS"},
        "expiration": {"N": "1800000000"},
        "in_progress_expiration": {"N": "1800000000000"},
        "validation": {"S": "f" * 64},
    }
    completed = {**in_progress, "status": {"S": "COMPLETED"}, "data": {"S": body}}
    order_item = {
        "pk": {"S": f"ORDER#{o.order_id}"},
        "sk": {"S": "ORDER"},
        "body": {"S": body},
        "version": {"N": "1"},
    }
    confirmed = {
        **order_item,
        "body": {"S": o.transition(OrderStatus.CONFIRMED, NOW).to_json().decode()},
    }
    per_command = write_units(in_progress) + write_units(completed)
    return {
        "create": write_units(order_item) + per_command,
        "create with Idempotency-Key": write_units(order_item) + per_command,
        "confirm": write_units(confirmed) + per_command,
        "cancel": write_units(confirmed) + per_command,
    }


READS = {"create": 0, "create with Idempotency-Key": 2, "confirm": 1, "cancel": 1}


def main() -> int:
    ours_units = ours(DynamoDBStore("orders", client=object()))  # type: ignore[arg-type]
    index = dict(ours_units)  # the index entry is the item (projection ALL), same sizing rule
    theirs = common_way()
    print("\nDynamoDB write units per command, 3-item priced order (computed from item sizes)")
    print(
        f"{'command':<30}{'orders-core':>12}{'common way':>12}{'ratio':>8}"
        f"{'+ index':>9}{'with customer':>15}{'reads':>7}"
    )
    for command, units in ours_units.items():
        print(
            f"{command:<30}{units:>12}{theirs[command]:>12}{units / theirs[command]:>8.2f}"
            f"{index[command]:>9}{units + index[command]:>15}{READS[command]:>7}"
        )
    save(
        "write_cost",
        {"orders_core": ours_units, "index": index, "reads": READS, "common_way": theirs},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
