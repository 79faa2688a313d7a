"""The core's store on one DynamoDB table.

Table design (single table; names in ``TableDesign``)::

    item            pk                      sk            other attributes
    --------------  ----------------------  ------------  -----------------------------------
    order           ORDER#<orderId>         ORDER         body (order JSON), version, owner,
                                                          customerId, gsi1pk, gsi1sk, events,
                                                          idem* (the record of a keyed create)
    idempotency     IDEMPOTENCY#<scoped>    IDEMPOTENCY   fingerprint, status, response, orderId,
                                                          orderVersion, expiresUs, generation, ttl
    cursor secret   META                    CURSOR        secret (B)

    GSI gsi1: gsi1pk = CUSTOMER#<customerId>, gsi1sk = <createdUs, 20 digits>#<orderId>
              (projection ALL): a customer's orders, oldest first.
    TTL attribute: ttl (epoch seconds) on idempotency items; DynamoDB deletes them some time
              after expiry, and reads treat ``expiresUs`` as the truth meanwhile. Records
              embedded in orders are not deleted (the order stays); they just expire.
    Stream:   NEW_IMAGE. The outbox is the stream: every order write carries ``events``, the
              domain events of that change, and the relay publishes them from the stream
              record. No separate outbox item, so no extra write.

Writes:

* A create is ONE conditional ``PutItem`` (``attribute_not_exists(pk)``). A keyed create's
  order id derives from the key (``derived_order_id``), so its record rides in the same item
  and a concurrent duplicate fails the same condition: still one write, no transaction.
* A transition is ONE ``UpdateItem`` conditioned on ``version = :expected``.
* A keyed transition is ``TransactWriteItems``: the update as above, and a record item put on
  ``attribute_not_exists(pk) OR expiresUs <= :now`` (an expired record may be replaced).
  ``ClientRequestToken`` makes an SDK retry of the same call a no-op.
* A failed condition becomes the core's ``ConcurrencyConflict``/``DuplicateRequest``
  (``raise ... from``); throttling and 5xx left after the SDK's standard retries become
  ``StoreUnavailable`` (503 with Retry-After).

Capacity: see :func:`write_units`; docs/decisions/0005-dynamodb-table.md has the figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from orders_core import cursor as cursors
from orders_core.domain import UNOWNED, Order
from orders_core.errors import (
    ConcurrencyConflict,
    DuplicateRequest,
    MalformedRequest,
    StoreUnavailable,
)
from orders_core.events import DomainEvent
from orders_core.idempotency import IdempotencyRecord, derived_order_id
from orders_core.ports import Backend, Change, OrderStore, Page

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

log = logging.getLogger("orders_aws.dynamodb")

UNAVAILABLE_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


@dataclass(frozen=True)
class TableDesign:
    """Key and index names, so a deployment (CDK, serverless.yml) and the store agree."""

    partition_key: str = "pk"
    sort_key: str = "sk"
    customer_index: str = "gsi1"
    ttl_attribute: str = "ttl"


DESIGN: Final = TableDesign()


FILTERED_READ: Final = 400
"""Most items one owner-filtered query reads."""
MAX_QUERIES_PER_PAGE: Final = 5
"""Round trips one listing page may take while the owner filter or DynamoDB's 1 MB cap
leaves it short."""


def _order_from(item: Mapping[str, Any]) -> Order:
    order = Order.model_validate_json(item["body"]["S"])
    return order.owned_by(item.get("owner", {}).get("S", UNOWNED))


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes an item counts for, by DynamoDB's documented sizing rules.

    Attribute names count as UTF-8 bytes; strings as UTF-8 bytes; binary as raw bytes;
    numbers as about one byte per two significant digits plus one.
    """
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            size += len(raw.encode())
        elif kind == "B":
            size += len(raw)
        elif kind == "N":
            digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
            size += math.ceil(len(digits) / 2) + 1
        elif kind == "BOOL" or kind == "NULL":
            size += 1
        else:  # lists and maps do not occur in our items
            raise ValueError(f"unsized attribute type {kind}")
    return size


def write_units(item: Mapping[str, Any], *, transactional: bool = False) -> int:
    """Write capacity units for one item: 1 per started KB, doubled inside a transaction."""
    units = max(1, math.ceil(item_size(item) / 1024))
    return units * 2 if transactional else units


def make_client(
    endpoint_url: str | None = None, region: str | None = None, max_pool_connections: int = 10
) -> DynamoDBClient:
    """One client per process, with timeouts that fit inside a command's deadline;
    ``max_pool_connections`` matches the threads that share it (botocore's default is 10:
    more threads would queue for a connection).

    Built with botocore directly: ``import boto3`` also imports s3transfer, ~70 ms of a
    cold start here (``python -X importtime``) for nothing a low-level client uses.
    """
    return client(  # type: ignore[no-any-return]
        "dynamodb",
        endpoint_url=endpoint_url,
        region=region,
        read_timeout=2,
        max_pool_connections=max_pool_connections,
    )


def client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    read_timeout: float = 3,
    max_pool_connections: int = 10,
) -> Any:
    """A botocore client with our timeouts and the standard retry mode."""
    from botocore.config import Config

    from orders_aws.botocore_session import session

    config = Config(
        connect_timeout=1,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": 3},
        tcp_keepalive=True,
        max_pool_connections=max_pool_connections,
    )
    return session().create_client(
        service,
        endpoint_url=endpoint_url,
        region_name=region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        config=config,
    )


class DynamoDBStore(OrderStore):
    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        design: TableDesign = DESIGN,
        cursor_secret: bytes | None = None,
    ) -> None:
        self.table = table
        self.client = client if client is not None else make_client()
        self.design = design
        self._cursor_secret = cursor_secret
        self.last_write_units = 0
        """Computed write units of the last commit (for the debug log and benchmarks)."""

    # -- items -------------------------------------------------------------------------

    def _key(self, pk: str, sk: str) -> dict[str, AttributeValueTypeDef]:
        return {self.design.partition_key: {"S": pk}, self.design.sort_key: {"S": sk}}

    def _order_key(self, order_id: str) -> dict[str, AttributeValueTypeDef]:
        return self._key(f"ORDER#{order_id}", "ORDER")

    def order_item(
        self, order: Order, events: tuple[DomainEvent, ...], order_json: bytes | None = None
    ) -> dict[str, Any]:
        body = order.to_json() if order_json is None else order_json
        item: dict[str, Any] = {
            **self._key(f"ORDER#{order.order_id}", "ORDER"),
            "body": {"S": body.decode()},
            "version": {"N": str(order.version)},
            "owner": {"S": order.owner},
            "events": {"S": _events_attribute(body, events)},
        }
        if order.customer_id is not None:
            item["customerId"] = {"S": order.customer_id}
            item["gsi1pk"] = {"S": f"CUSTOMER#{order.customer_id}"}
            item["gsi1sk"] = {"S": f"{_us(order.created_at):020d}#{order.order_id}"}
        return item

    def record_item(self, record: IdempotencyRecord) -> dict[str, Any]:
        return {
            **self._key(f"IDEMPOTENCY#{record.key}", "IDEMPOTENCY"),
            "fingerprint": {"S": record.fingerprint},
            "status": {"N": str(record.status)},
            "response": {"B": record.body},
            "orderId": {"S": record.order_id},
            "orderVersion": {"N": str(record.version)},
            "expiresUs": {"N": str(_us(record.expires_at))},
            "generation": {"N": str(record.generation)},
            self.design.ttl_attribute: {"N": str(int(record.expires_at.timestamp()))},
        }

    # -- OrderStore --------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        response = self._call(
            "get_item",
            TableName=self.table,
            Key=self._key(f"ORDER#{order_id}", "ORDER"),
            ConsistentRead=True,  # this read may decide a write
        )
        item = response.get("Item")
        return None if item is None else _order_from(item)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """A key's record: a record item (keyed transitions), or embedded in the order a
        keyed create made (its id derived from the key), following expired generations."""
        record_key = self._key(f"IDEMPOTENCY#{key}", "IDEMPOTENCY")
        generation = 0
        found = self._batch_get([record_key, self._order_key(derived_order_id(key, 0))])
        record_item = found.get(f"IDEMPOTENCY#{key}")
        if record_item is not None:
            return self._record_from(key, record_item, prefix="")
        latest: IdempotencyRecord | None = None
        order_item = found.get(f"ORDER#{derived_order_id(key, 0)}")
        while order_item is not None and order_item.get("idemKey", {}).get("S") == key:
            latest = self._record_from(key, order_item, prefix="idem")
            if not latest.expired(datetime.now(UTC)):
                break
            generation += 1
            order_item = self._call(
                "get_item",
                TableName=self.table,
                Key=self._order_key(derived_order_id(key, generation)),
                ConsistentRead=True,
            ).get("Item")
        return latest

    @staticmethod
    def _record_from(key: str, item: Mapping[str, Any], *, prefix: str) -> IdempotencyRecord:
        def attr(name: str) -> Any:
            full = prefix + name[0].upper() + name[1:] if prefix else name
            return item[full]

        if prefix:
            order_id, version = item["pk"]["S"].removeprefix("ORDER#"), int(attr("version")["N"])
            response = bytes(attr("response")["B"])
            generation = int(attr("generation")["N"])
        else:
            order_id, version = item["orderId"]["S"], int(item["orderVersion"]["N"])
            response = bytes(item["response"]["B"])
            generation = int(item.get("generation", {"N": "0"})["N"])
        return IdempotencyRecord(
            key=key,
            fingerprint=attr("fingerprint")["S"],
            status=int(attr("status")["N"]),
            body=response,
            order_id=order_id,
            version=version,
            expires_at=_from_us(int(attr("expiresUs")["N"])),
            generation=generation,
        )

    def _batch_get(self, keys: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Items by ``pk``, read strongly consistently in one round trip (plus retries of
        unprocessed keys, which DynamoDB may leave under load)."""
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            response = self._call("batch_get_item", RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                found[item["pk"]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
        raise StoreUnavailable("the table did not answer a read in full")

    def list_by_customer(
        self,
        customer_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Page:
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": self.design.customer_index,
            "KeyConditionExpression": "gsi1pk = :c",
            "ExpressionAttributeValues": {":c": {"S": f"CUSTOMER#{customer_id}"}},
            "Limit": limit + 1,  # one more tells whether another page exists
        }
        if owner is not None:
            # Items from before owners were stored have none: they are the anonymous
            # principal's (UNOWNED), as the SQLite migration makes them.
            condition = "#owner = :o"
            if owner == UNOWNED:
                condition += " OR attribute_not_exists(#owner)"
            query["FilterExpression"] = condition
            query["ExpressionAttributeNames"] = {"#owner": "owner"}
            query["ExpressionAttributeValues"][":o"] = {"S": owner}
            # `Limit` counts items read before the filter; reads are billed by size, not
            # count, so reading further per round trip costs no more and fills pages sooner.
            query["Limit"] = min(FILTERED_READ, 4 * (limit + 1))
        if cursor is not None:
            position = cursors.decode(cursor, self._secret())
            try:
                sort_key, order_id = str(position["s"]), str(position["id"])
            except KeyError:
                raise MalformedRequest("invalid pagination cursor") from None
            # The partition comes from the request, never from the cursor: a cursor cannot
            # open another customer's orders even if its secret leaked.
            query["ExclusiveStartKey"] = {
                **self._key(f"ORDER#{order_id}", "ORDER"),
                "gsi1pk": {"S": f"CUSTOMER#{customer_id}"},
                "gsi1sk": {"S": sort_key},
            }
        # A query stops at `Limit` items *read* or 1 MB, whichever comes first, before the
        # owner filter: follow LastEvaluatedKey until the page is full, for a bounded
        # number of round trips; past that, the page is short and its cursor resumes
        # where the reading stopped, so every order stays reachable.
        items: list[dict[str, Any]] = []
        resume: dict[str, Any] | None = None
        for _ in range(MAX_QUERIES_PER_PAGE):
            response = self._call("query", **query)
            items.extend(response.get("Items", []))
            resume = response.get("LastEvaluatedKey")
            if len(items) > limit or resume is None:
                break
            query["ExclusiveStartKey"] = resume
        orders = [_order_from(i) for i in items[:limit]]
        next_cursor = None
        if len(items) > limit:
            last = items[limit - 1]
            next_cursor = cursors.encode(
                {"s": last["gsi1sk"]["S"], "id": orders[-1].order_id}, self._secret()
            )
        elif resume is not None:
            position = {"s": resume["gsi1sk"]["S"], "id": resume["pk"]["S"].removeprefix("ORDER#")}
            next_cursor = cursors.encode(position, self._secret())
        return Page(orders, next_cursor)

    def commit(self, change: Change, *, now: datetime) -> None:
        order, record = change.order, change.idempotency
        if change.expected_version == 0:
            item = self.order_item(order, change.events, change.order_json)
            embedded = record is not None and order.order_id == derived_order_id(
                record.key, record.generation
            )
            if record is not None and embedded:
                # A keyed create: the record lives in the order it made, and the order's id
                # is derived from the key, so a concurrent duplicate collides right here.
                item.update(self._embedded_record(record))
            write: dict[str, Any] = {
                "Put": {
                    "TableName": self.table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        else:
            embedded = False
            update = self.order_item(order, change.events, change.order_json)
            # The version read is the version overwritten: a writer that read an older one
            # fails here instead of overwriting a newer state (optimistic concurrency).
            # UpdateItem, not PutItem, so a record embedded at creation survives.
            write = {
                "Update": {
                    "TableName": self.table,
                    "Key": self._order_key(order.order_id),
                    "UpdateExpression": "SET #body = :body, version = :version, events = :events",
                    "ConditionExpression": "version = :expected",
                    "ExpressionAttributeNames": {"#body": "body"},
                    "ExpressionAttributeValues": {
                        ":body": update["body"],
                        ":version": update["version"],
                        ":events": update["events"],
                        ":expected": {"N": str(change.expected_version)},
                    },
                }
            }
            item = update
        # A token of this commit, written with the item: if the SDK retries a write whose
        # answer was lost (it landed, then the retry fails its condition), the item carries
        # our token and the commit is recognised as done instead of reported as a conflict,
        # which would make the service decide again (a second order, or a 409 for a confirm
        # that worked). Transactions get the same from ClientRequestToken.
        token = uuid.uuid4().hex
        self._stamp(write, token)
        if record is None or embedded:
            self.last_write_units = write_units(item)
            ((kind, params),) = write.items()
            try:
                response = self._call(
                    "put_item" if kind == "Put" else "update_item",
                    ReturnConsumedCapacity="TOTAL",
                    **params,
                )
            except _ConditionFailed as exc:
                if self._landed(order.order_id, token):
                    return
                if embedded:
                    raise DuplicateRequest(
                        "a concurrent duplicate created this order"
                    ) from exc.__cause__
                raise ConcurrencyConflict(
                    f"order {order.order_id} is not at version {change.expected_version}"
                ) from exc.__cause__
            self._log_capacity(response)
            return

        record_put: dict[str, Any] = {
            "TableName": self.table,
            "Item": self.record_item(record),
            # Closes the race between two duplicates: only one can insert the key while a
            # live record exists; an expired one may be replaced.
            "ConditionExpression": "attribute_not_exists(pk) OR expiresUs <= :now",
            "ExpressionAttributeValues": {":now": {"N": str(_us(now))}},
        }
        self.last_write_units = write_units(item, transactional=True) + write_units(
            record_put["Item"], transactional=True
        )
        try:
            response = self._call(
                "transact_write_items",
                TransactItems=[write, {"Put": record_put}],
                ClientRequestToken=uuid.uuid4().hex,
                ReturnConsumedCapacity="TOTAL",
            )
        except _Cancelled as exc:
            codes = exc.codes
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise DuplicateRequest(
                    f"idempotency key {record.key} already used"
                ) from exc.__cause__
            raise ConcurrencyConflict(
                f"order {order.order_id} changed concurrently ({', '.join(codes)})"
            ) from exc.__cause__
        self._log_capacity(response)

    @staticmethod
    def _stamp(write: dict[str, Any], token: str) -> None:
        if "Put" in write:
            write["Put"]["Item"]["commit"] = {"S": token}
        else:
            update = write["Update"]
            update["UpdateExpression"] += ", #commit = :commit"
            update["ExpressionAttributeNames"]["#commit"] = "commit"
            update["ExpressionAttributeValues"][":commit"] = {"S": token}

    def _landed(self, order_id: str, token: str) -> bool:
        item = self._call(
            "get_item", TableName=self.table, Key=self._order_key(order_id), ConsistentRead=True
        ).get("Item")
        return item is not None and item.get("commit", {}).get("S") == token

    def _embedded_record(self, record: IdempotencyRecord) -> dict[str, Any]:
        return {
            "idemKey": {"S": record.key},
            "idemFingerprint": {"S": record.fingerprint},
            "idemStatus": {"N": str(record.status)},
            "idemResponse": {"B": record.body},
            "idemVersion": {"N": str(record.version)},
            "idemExpiresUs": {"N": str(_us(record.expires_at))},
            "idemGeneration": {"N": str(record.generation)},
        }

    # -- plumbing ----------------------------------------------------------------------

    def _log_capacity(self, response: Mapping[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity")
        if isinstance(consumed, list):
            reported = sum(c.get("CapacityUnits", 0) for c in consumed)
        elif isinstance(consumed, dict):
            reported = consumed.get("CapacityUnits")
        else:
            reported = None
        log.debug(
            "commit",
            extra={"writeUnits": self.last_write_units, "consumedCapacity": reported},
        )

    def _secret(self) -> bytes:
        """The cursor HMAC key, shared by every instance through the table (lazily, so a
        cold start that never lists pays nothing)."""
        if self._cursor_secret is None:
            key = self._key("META", "CURSOR")
            # If another instance created it first, its secret wins: read it back either way.
            with contextlib.suppress(_ConditionFailed):
                self._call(
                    "put_item",
                    TableName=self.table,
                    Item={**key, "secret": {"B": os.urandom(32)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            item = self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
            self._cursor_secret = bytes(item["Item"]["secret"]["B"])
        return self._cursor_secret

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Call the client, translating native errors into the core's."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed() from exc
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                raise _Cancelled([r.get("Code", "None") for r in reasons]) from exc
            if code in UNAVAILABLE_CODES or code.endswith("ThrottlingException"):
                raise StoreUnavailable("the table is throttled or unavailable") from exc
            if code == "ResourceNotFoundException":
                raise StoreUnavailable("the table does not exist") from exc
            raise
        except BotoCoreError as exc:  # timeouts, connection errors after retries
            raise StoreUnavailable("the table could not be reached") from exc


class _ConditionFailed(Exception):
    """Internal: a single write's condition failed."""


class _Cancelled(Exception):
    """Internal: a transaction was cancelled; ``codes`` has one reason per item."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__(", ".join(codes))
        self.codes = codes


def create_table(client: DynamoDBClient, table: str, design: TableDesign = DESIGN) -> None:
    """Create the table as deployments do (for tests, DynamoDB Local and local runs)."""
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": design.partition_key, "AttributeType": "S"},
            {"AttributeName": design.sort_key, "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": design.partition_key, "KeyType": "HASH"},
            {"AttributeName": design.sort_key, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": design.customer_index,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
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


def _events_attribute(body: bytes, events: tuple[DomainEvent, ...]) -> str:
    """The change's events, without ``data`` where it is the order's new state (it always is
    for our events): the item's ``body`` already holds it, and leaving it out keeps a 3-item
    order item under 1 KB, one write unit instead of two."""
    records = [event.to_record(with_data=event.data_json != body) for event in events]
    return json.dumps(records, separators=(",", ":"))


def events_from_stream_image(image: Mapping[str, Any]) -> list[DomainEvent]:
    """The domain events an order item's stream image carries ([] for other items)."""
    pk = image.get("pk", {}).get("S", "")
    if not pk.startswith("ORDER#") or "events" not in image:
        return []
    body = json.loads(image["body"]["S"])
    return [
        DomainEvent.from_record({"data": body, **record})
        for record in json.loads(image["events"]["S"])
    ]


def backend(settings: Mapping[str, str]) -> Backend:
    """The DynamoDB backend of a long-running runtime (``orders-local serve --store dynamodb``).

    Settings: ``table`` (required), ``endpoint_url``, ``max_pool_connections`` (the
    runtime's request threads; default 10, botocore's). The table must exist: checked now, so
    a typo fails the start, not the first request. Events leave through the table's stream
    (the AWS relay), not through a local sink.
    """
    table = settings.get("table", "")
    if not table:
        raise ValueError("--store dynamodb needs --table")
    try:
        client = make_client(
            endpoint_url=settings.get("endpoint_url") or None,
            max_pool_connections=int(settings.get("max_pool_connections") or 10),
        )
        client.describe_table(TableName=table)
    except Exception as exc:
        raise ValueError(f"cannot use DynamoDB table {table!r}: {type(exc).__name__}") from None
    return Backend(
        name="dynamodb",
        store=DynamoDBStore(table, client),
        describe=f"DynamoDB table {table}",
        events="the table's stream",
    )
