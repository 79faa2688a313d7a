"""One DynamoDB call, its native errors translated into the core's: the one place the
store maps botocore's exceptions (``raise ... from``)."""

from __future__ import annotations

from typing import Any, Final

from orders_core.errors import StoreUnavailable

UNAVAILABLE_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """Call the client, translating native errors into the core's."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        answer: dict[str, Any] = dict(exc.response)  # with the error's modeled fields
        code = answer.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(answer.get("Item")) from exc
        if code == "TransactionConflictException":  # the item is inside a transaction
            raise InTransaction() from exc
        if code == "TransactionCanceledException":
            reasons = answer.get("CancellationReasons", [])
            codes = [r.get("Code", "None") for r in reasons]
            raise Cancelled(codes, [r.get("Item") for r in reasons]) from exc
        if code in UNAVAILABLE_CODES or code.endswith("ThrottlingException"):
            raise StoreUnavailable("the table is throttled or unavailable") from exc
        if code == "ResourceNotFoundException":
            raise StoreUnavailable("the table does not exist") from exc
        raise
    except BotoCoreError as exc:  # timeouts, connection errors after retries
        raise StoreUnavailable("the table could not be reached") from exc


class ConditionFailed(Exception):
    """A single write's condition failed (the store decides what that means). ``item``:
    the item that failed it, where the write asked for it with
    ``ReturnValuesOnConditionCheckFailure`` and the engine returns it (DynamoDB does; old
    DynamoDB Local builds return nothing), else None."""

    def __init__(self, item: dict[str, Any] | None = None) -> None:
        super().__init__("the condition failed")
        self.item = item


class InTransaction(Exception):
    """A single write met an item another request's transaction is writing: it may or may
    not commit, so the write is neither refused for good nor done (standard retry mode does
    not retry it)."""


class Cancelled(Exception):
    """A transaction was cancelled; ``codes`` has one reason per item, ``items`` the item
    that failed each one's condition where it was asked for and returned (else None)."""

    def __init__(self, codes: list[str], items: list[dict[str, Any] | None] | None = None) -> None:
        super().__init__(", ".join(codes))
        self.codes = codes
        self.items = items if items is not None else [None] * len(codes)
