"""The table's design, and creating a table to it (tests, DynamoDB Local, local runs).

Single table; attribute names from :class:`TableDesign`::

    item            pk                      sk            other attributes
    --------------  ----------------------  ------------  -----------------------------------
    order           ORDER#<orderId>         ORDER         body (order JSON), version, owner,
                                                          customerId, gsi1pk, gsi1sk, events,
                                                          idem* (the record of a keyed create)
    record          ORDER#<derived id>      ORDER         idem*, idemOrderId, ttl: a keyed
                                                          change's record, at its key's slot
                                                          (no body, no events)
    cursor secret   META                    CURSOR        secret (B)

    GSI gsi1: gsi1pk = CUSTOMER#<customerId>, gsi1sk = <createdUs, 20 digits>#<orderId>
              (projection ALL): a customer's orders, oldest first.
    Slots:    a key's generation g lives at ORDER#<derived_order_id(key, g)>: orders (never
              deleted) and then at most one record item, replaced in place once expired
              (orders_aws.dynamodb). Records embedded in orders just expire.
    TTL attribute: ttl (epoch seconds) on record items; DynamoDB deletes them some time
              after expiry, and reads treat ``idemExpiresUs`` as the truth meanwhile.
    Stream:   NEW_IMAGE. The outbox is the stream: every order write carries ``events``, the
              domain events of that change (:mod:`orders_aws.item_events`), and the relay
              publishes them from the stream record. No separate outbox item, no extra write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


@dataclass(frozen=True)
class TableDesign:
    """Key, index and TTL attribute names: the store, :func:`create_table`, the CDK stack
    read these, and a test holds serverless.yml to them, so a deployment and the store
    cannot disagree."""

    partition_key: str = "pk"
    sort_key: str = "sk"
    customer_index: str = "gsi1"
    customer_partition_key: str = "gsi1pk"
    customer_sort_key: str = "gsi1sk"
    ttl_attribute: str = "ttl"

    @property
    def key_attributes(self) -> tuple[str, ...]:
        """Every attribute a key schema names: those a table definition must declare."""
        return (
            self.partition_key,
            self.sort_key,
            self.customer_partition_key,
            self.customer_sort_key,
        )


DESIGN: Final = TableDesign()


def create_table(client: DynamoDBClient, table: str, design: TableDesign = DESIGN) -> None:
    """Create the table as deployments do (for tests, DynamoDB Local and local runs)."""
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in design.key_attributes
        ],
        KeySchema=[
            {"AttributeName": design.partition_key, "KeyType": "HASH"},
            {"AttributeName": design.sort_key, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": design.customer_index,
                "KeySchema": [
                    {"AttributeName": design.customer_partition_key, "KeyType": "HASH"},
                    {"AttributeName": design.customer_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1})
    client.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": design.ttl_attribute},
    )
