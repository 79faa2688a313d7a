"""The core's store on one DynamoDB table.

Items, keys and the stream are described in :mod:`orders_aws.table`; the names come from
the store's :class:`~orders_aws.table.TableDesign`.

Writes:

* Every idempotency key has one slot per generation: the item at
  ``derived_order_id(key, generation)``'s order key. A keyed create writes its order
  there, the record inside it; a keyed change to an existing order writes a record item
  there. Every such write is conditioned on the slot being empty or holding an expired
  record item (:meth:`DynamoDBStore._slot_free`), so whichever request under a key commits
  first holds the slot and the other's write fails: a key is refused across command types
  in the write itself, with no read first and no race (the service relies on that, see
  ``OrderStore.commit``). Orders stay, so a key reused after expiry by a create moves to the
  next slot; a record item expires (TTL deletes it later) and is replaced in place, so it is
  always the last slot of its key and deleting it leaves no hole.
* A create is ONE conditional ``PutItem``. A keyed create's record rides in its order item,
  at its slot: still one write, no transaction.
* A transition is ONE ``UpdateItem`` conditioned on ``version = :expected``.
* A keyed transition is ``TransactWriteItems``: the update as above, and the record item
  put at the key's slot. ``ClientRequestToken`` makes an SDK retry of the same call a no-op.
* A failed condition becomes the core's ``ConcurrencyConflict``/``DuplicateRequest``
  (``raise ... from``); throttling and 5xx left after the SDK's standard retries become
  ``StoreUnavailable`` (503 with Retry-After).

Capacity: see :func:`orders_aws.capacity.write_units`; the figures are in
docs/decisions/0005-dynamodb-table.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from orders_aws.calls import Cancelled, ConditionFailed, InTransaction, call
from orders_aws.capacity import write_units
from orders_aws.clients import make_client
from orders_aws.item_events import ORDER_PREFIX
from orders_aws.items import Items, order_from, us
from orders_aws.table import DESIGN, TableDesign
from orders_core.application import (
    Backend,
    Change,
    IdempotencyRecord,
    OrderStore,
    Page,
    decode_cursor,
    derived_order_id,
    encode_cursor,
)
from orders_core.domain import UNOWNED, Order
from orders_core.errors import (
    ConcurrencyConflict,
    Contended,
    DuplicateRequest,
    MalformedRequest,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger("orders_aws.dynamodb")


FILTERED_READ: Final = 400
"""Most items one owner-filtered query reads."""
MAX_QUERIES_PER_PAGE: Final = 5
"""Round trips one listing page may take while the owner filter or DynamoDB's 1 MB cap
leaves it short."""


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
        self.items = Items(design)
        self._cursor_secret = cursor_secret
        self.last_write_units = 0
        """Computed write units of the last commit (for the debug log and benchmarks)."""

    # -- OrderStore --------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        response = self._call(
            "get_item",
            TableName=self.table,
            Key=self.items.order_key(order_id),
            ConsistentRead=True,  # this read may decide a write
        )
        item = response.get("Item")
        # A record item sits at a derived id's key but is no order (see record_item).
        return None if item is None or "body" not in item else order_from(item)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The latest record under a key. Its generations sit at the slots
        ``derived_order_id(key, 0), (key, 1), ...``: first the orders keyed creates made
        (orders stay), then at most one record item, which a later request replaces in
        place and never passes. So the latest record is the one at the first slot that
        holds no order, or in the order just before it. No clock is read here: the service
        judges expiry with its own. Slots 0 and 1 come in one round trip, which is every
        key's whole search until a second create reuses it after expiry; past that the
        first slot without an order is found by doubling, then halving (a few round trips
        however often a client reuses one key)."""
        first = self._batch_get([self.items.order_key(derived_order_id(key, g)) for g in (0, 1)])
        found = {g: first.get(f"{ORDER_PREFIX}{derived_order_id(key, g)}") for g in (0, 1)}

        def slot(generation: int) -> dict[str, Any] | None:
            if generation not in found:
                found[generation] = self._call(
                    "get_item",
                    TableName=self.table,
                    Key=self.items.order_key(derived_order_id(key, generation)),
                    ConsistentRead=True,
                ).get("Item")
            return found[generation]

        def made(generation: int) -> bool:  # an order a keyed create under this key made
            item = slot(generation)
            return item is not None and "body" in item and self._holds(item, key)

        below, above = -1, 0  # slots <= below hold orders; slot `above` holds none
        while made(above):
            below, above = above, max(1, 2 * above)
        while above - below > 1:
            middle = (below + above) // 2
            below, above = (middle, above) if made(middle) else (below, middle)
        end = slot(above)
        if end is not None and self._holds(end, key):
            return self.items.record_from(key, end)  # a record item
        if below >= 0:
            return self.items.record_from(key, slot(below) or {})
        return None

    @staticmethod
    def _holds(item: Mapping[str, Any], key: str) -> bool:
        return bool(item.get("idemKey", {}).get("S") == key)

    def _batch_get(self, keys: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Items by partition key, read strongly consistently in one round trip (plus retries of
        unprocessed keys, which DynamoDB may leave under load)."""
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            response = self._call("batch_get_item", RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                found[item[self.design.partition_key]["S"]] = item
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
        design = self.design
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": self.design.customer_index,
            "KeyConditionExpression": f"{design.customer_partition_key} = :c",
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
            position = decode_cursor(cursor, self._secret())
            try:
                sort_key, order_id = str(position["s"]), str(position["id"])
            except KeyError:
                raise MalformedRequest("invalid pagination cursor") from None
            # The partition comes from the request, never from the cursor: a cursor cannot
            # open another customer's orders even if its secret leaked.
            query["ExclusiveStartKey"] = {
                **self.items.order_key(order_id),
                design.customer_partition_key: {"S": f"CUSTOMER#{customer_id}"},
                design.customer_sort_key: {"S": sort_key},
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
        orders = [order_from(i) for i in items[:limit]]
        next_cursor = None
        if len(items) > limit:
            last = items[limit - 1]
            next_cursor = encode_cursor(
                {"s": last[design.customer_sort_key]["S"], "id": orders[-1].order_id},
                self._secret(),
            )
        elif resume is not None:
            position = {
                "s": resume[design.customer_sort_key]["S"],
                "id": self.items.order_id(resume),
            }
            next_cursor = encode_cursor(position, self._secret())
        return Page(orders, next_cursor)

    def commit(self, change: Change, *, now: datetime) -> None:
        order, record = change.order, change.idempotency
        if change.expected_version == 0:
            item = self.items.order_item(order, change.events, change.order_json)
            embedded = record is not None and order.order_id == derived_order_id(
                record.key, record.generation
            )
            if record is not None and embedded:
                # A keyed create: the record lives in the order it made, and the order's id
                # is derived from the key, so a concurrent duplicate collides right here.
                item.update(self.items.embedded_record(record))
            write: dict[str, Any] = {"Put": {"TableName": self.table, "Item": item}}
            # A keyed create writes its key's slot; any other's id is fresh, never a slot.
            fresh = {"ConditionExpression": f"attribute_not_exists({self.design.partition_key})"}
            write["Put"].update(self._slot_free(now) if embedded else fresh)
        else:
            embedded = False
            update = self.items.order_item(order, change.events, change.order_json)
            # The version read is the version overwritten: a writer that read an older one
            # fails here instead of overwriting a newer state (optimistic concurrency).
            # UpdateItem, not PutItem, so a record embedded at creation survives.
            write = {
                "Update": {
                    "TableName": self.table,
                    "Key": self.items.order_key(order.order_id),
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
                    **self._capacity(),
                    **params,
                    # A refusal then carries the item in the way: whether it is ours (an
                    # earlier attempt landed) and the key's record, without reading them.
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except InTransaction as exc:
                # A keyed transition is writing this slot (or this order). Unless an earlier
                # attempt of ours landed (its answer lost), the service reads the key again
                # and decides again, whichever way that transaction goes.
                if self._landed(order.order_id, token):
                    return
                busy: type[ConcurrencyConflict] = DuplicateRequest if embedded else Contended
                raise busy(f"order {order.order_id} is inside a transaction") from exc.__cause__
            except ConditionFailed as exc:
                if self._landed(order.order_id, token, exc.item):
                    return
                if embedded:
                    raise DuplicateRequest(
                        "a concurrent duplicate created this order",
                        record=self._record_in(exc.item),
                    ) from exc.__cause__
                raise ConcurrencyConflict(
                    f"order {order.order_id} is not at version {change.expected_version}"
                ) from exc.__cause__
            self._log_capacity(response)
            return

        record_put: dict[str, Any] = {
            "TableName": self.table,
            "Item": self.items.record_item(record),
            **self._slot_free(now),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",  # the record in the way
        }
        self.last_write_units = write_units(item, transactional=True) + write_units(
            record_put["Item"], transactional=True
        )
        try:
            response = self._call(
                "transact_write_items",
                TransactItems=[write, {"Put": record_put}],
                ClientRequestToken=uuid.uuid4().hex,
                **self._capacity(),
            )
        except Cancelled as exc:
            codes = exc.codes
            if len(codes) > 1 and codes[1] in ("ConditionalCheckFailed", "TransactionConflict"):
                # The key's slot is taken, or being written by another request under the
                # key: the service replays the record in the way if the refusal carried a
                # live one, else reads the key again before anything else.
                raise DuplicateRequest(
                    f"idempotency key {record.key} already used ({codes[1]})",
                    record=self._record_in(exc.items[1]),
                ) from exc.__cause__
            if "ConditionalCheckFailed" not in codes:  # held by another transaction only
                raise Contended(
                    f"order {order.order_id} is inside a transaction ({', '.join(codes)})"
                ) from exc.__cause__
            raise ConcurrencyConflict(
                f"order {order.order_id} changed concurrently ({', '.join(codes)})"
            ) from exc.__cause__
        self._log_capacity(response)

    def _slot_free(self, now: datetime) -> dict[str, Any]:
        """The condition of every write to a key's slot (a keyed create's, a keyed change's
        record item): the item is absent, or a record item whose record has expired, which
        the write replaces. An
        order there, or a live record, refuses it: whichever request under a key wrote
        first holds the slot, so a create and a change under one key never both commit."""
        return {
            "ConditionExpression": (
                f"attribute_not_exists({self.design.partition_key})"
                " OR (attribute_not_exists(#body) AND idemExpiresUs <= :now)"
            ),
            "ExpressionAttributeNames": {"#body": "body"},
            "ExpressionAttributeValues": {":now": {"N": str(us(now))}},
        }

    @staticmethod
    def _stamp(write: dict[str, Any], token: str) -> None:
        if "Put" in write:
            write["Put"]["Item"]["commit"] = {"S": token}
        else:
            update = write["Update"]
            update["UpdateExpression"] += ", #commit = :commit"
            update["ExpressionAttributeNames"]["#commit"] = "commit"
            update["ExpressionAttributeValues"][":commit"] = {"S": token}

    def _landed(self, order_id: str, token: str, seen: dict[str, Any] | None = None) -> bool:
        """Whether the order item carries this commit's token: from ``seen``, the item a
        refused write returned, else read."""
        item = seen
        if item is None:
            item = self._call(
                "get_item",
                TableName=self.table,
                Key=self.items.order_key(order_id),
                ConsistentRead=True,
            ).get("Item")
        return item is not None and item.get("commit", {}).get("S") == token

    def _record_in(self, item: dict[str, Any] | None) -> IdempotencyRecord | None:
        """The record a refused write found at its key's slot, under the key the item names
        (the service trusts only its own key's), if the refusal returned the item; None:
        the service reads the key."""
        if item is None or "idemKey" not in item:
            return None
        return self.items.record_from(item["idemKey"]["S"], item)

    # -- plumbing ----------------------------------------------------------------------

    @staticmethod
    def _capacity() -> dict[str, str]:
        """Ask for the consumed capacity only when the debug log will show it: parsing it
        is a share of every write's CPU."""
        return {"ReturnConsumedCapacity": "TOTAL"} if log.isEnabledFor(logging.DEBUG) else {}

    def _log_capacity(self, response: Mapping[str, Any]) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
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
            key = self.items.key("META", "CURSOR")
            # If another instance created it first, its secret wins: read it back either way.
            with contextlib.suppress(ConditionFailed):
                self._call(
                    "put_item",
                    TableName=self.table,
                    Item={**key, "secret": {"B": os.urandom(32)}},
                    ConditionExpression=f"attribute_not_exists({self.design.partition_key})",
                )
            item = self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
            self._cursor_secret = bytes(item["Item"]["secret"]["B"])
        return self._cursor_secret

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return call(self.client, operation, **kwargs)


def backend(settings: Mapping[str, str]) -> Backend:
    """The ``dynamodb`` backend (:data:`orders_core.application.BackendFactory`): the store on an
    existing table; events leave through the table's stream, so there is no outbox.

    ``settings``: ``table`` (required), ``endpoint_url`` (optional, e.g. DynamoDB Local),
    ``max_pool_connections`` (the runtime's request threads; default 10, botocore's). The
    table is looked up once here, so a wrong name or endpoint fails at startup with a clear
    message instead of on the first request.
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
    except ImportError:  # pragma: no cover - depends on the install
        raise ValueError("--store dynamodb needs boto3: pip install 'orders-core[aws]'") from None
    except Exception as exc:
        raise ValueError(f"cannot use DynamoDB table {table!r}: {type(exc).__name__}") from None
    close: Callable[[], None] = client.close
    return Backend(
        name="dynamodb",
        store=DynamoDBStore(table, client),
        describe=f"DynamoDB table {table}",
        events="the table's stream",
        outbox=None,
        close=close,
    )
