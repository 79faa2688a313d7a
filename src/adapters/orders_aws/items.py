"""Orders and idempotency records as DynamoDB items, and back, named by a :class:`TableDesign`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orders_aws.item_events import ORDER_PREFIX, events_attribute
from orders_aws.table import DESIGN, TableDesign
from orders_core.application import IdempotencyRecord, derived_order_id
from orders_core.domain import UNOWNED, DomainEvent, Order

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


def order_from(item: Mapping[str, Any]) -> Order:
    order = Order.model_validate_json(item["body"]["S"])
    return order.owned_by(item.get("owner", {}).get("S", UNOWNED))


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


class Items:
    """The item shapes of one table design (see :mod:`orders_aws.table`)."""

    def __init__(self, design: TableDesign = DESIGN) -> None:
        self.design = design

    def key(self, pk: str, sk: str) -> dict[str, AttributeValueTypeDef]:
        return {self.design.partition_key: {"S": pk}, self.design.sort_key: {"S": sk}}

    def order_key(self, order_id: str) -> dict[str, AttributeValueTypeDef]:
        return self.key(f"{ORDER_PREFIX}{order_id}", "ORDER")

    def order_item(
        self, order: Order, events: tuple[DomainEvent, ...], order_json: bytes | None = None
    ) -> dict[str, Any]:
        body = order.to_json() if order_json is None else order_json
        item: dict[str, Any] = {
            **self.order_key(order.order_id),
            "body": {"S": body.decode()},
            "version": {"N": str(order.version)},
            "owner": {"S": order.owner},
            "events": {"S": events_attribute(body, events)},
        }
        if order.customer_id is not None:
            item["customerId"] = {"S": order.customer_id}
            item[self.design.customer_partition_key] = {"S": f"CUSTOMER#{order.customer_id}"}
            item[self.design.customer_sort_key] = {
                "S": f"{us(order.created_at):020d}#{order.order_id}"
            }
        return item

    def order_id(self, item: Mapping[str, Any]) -> str:
        return str(item[self.design.partition_key]["S"]).removeprefix(ORDER_PREFIX)

    def record_item(self, record: IdempotencyRecord) -> dict[str, Any]:
        """A keyed change's record in an item of its own, at the key's slot for its
        generation: the item a keyed create under the key would write its order to, so
        the two can never both commit (see :mod:`orders_aws.dynamodb`). No ``body`` and
        no ``events``: not an order, and nothing for the relay. TTL deletes it some time
        after it expired; it is always its key's last slot, so that leaves no hole."""
        return {
            **self.order_key(derived_order_id(record.key, record.generation)),
            **self.embedded_record(record),
            "idemOrderId": {"S": record.order_id},
            # Rounded up: TTL must never delete a record before it expires.
            self.design.ttl_attribute: {"N": str(math.ceil(record.expires_at.timestamp()))},
        }

    def record_from(self, key: str, item: Mapping[str, Any]) -> IdempotencyRecord:
        """The record in a key's slot item: an order a keyed create made, or a record item
        (which names the order it answered for)."""
        order_id = item["idemOrderId"]["S"] if "idemOrderId" in item else self.order_id(item)
        return IdempotencyRecord(
            key=key,
            fingerprint=item["idemFingerprint"]["S"],
            status=int(item["idemStatus"]["N"]),
            body=bytes(item["idemResponse"]["B"]),
            order_id=order_id,
            version=int(item["idemVersion"]["N"]),
            expires_at=from_us(int(item["idemExpiresUs"]["N"])),
            generation=int(item["idemGeneration"]["N"]),
        )

    def embedded_record(self, record: IdempotencyRecord) -> dict[str, Any]:
        return {
            "idemKey": {"S": record.key},
            "idemFingerprint": {"S": record.fingerprint},
            "idemStatus": {"N": str(record.status)},
            "idemResponse": {"B": record.body},
            "idemVersion": {"N": str(record.version)},
            "idemExpiresUs": {"N": str(us(record.expires_at))},
            "idemGeneration": {"N": str(record.generation)},
        }
