"""The one error hierarchy of orders-core.

Adapters translate native failures into these (``raise ... from exc``), so the service and
the HTTP binding handle a SQLite ``IntegrityError`` and a DynamoDB
``ConditionalCheckFailedException`` the same way. Each class carries the HTTP status and
problem type it maps to; nothing else in the core needs to know about HTTP codes.

    OrdersError
    ├── RequestError                    the caller sent something we refuse (4xx)
    │   ├── MalformedRequest            400  unparseable JSON, bad header, bad cursor
    │   ├── Unauthenticated             401  no credentials, or ones that do not verify
    │   ├── Forbidden                   403  authenticated, but not allowed (the console)
    │   ├── NotFound                    404
    │   ├── MethodNotAllowed            405
    │   ├── InvalidTransition           409  e.g. cancel a FULFILLED order
    │   ├── NotRedeliverable            409  redeliver an event that has not failed
    │   ├── PreconditionFailed          412  If-Match names a stale version
    │   ├── PayloadTooLarge             413
    │   ├── UnsupportedMediaType        415
    │   ├── ValidationFailed            422  field errors, with JSON pointers
    │   └── IdempotencyKeyReused        422  same key, different payload
    ├── ConcurrencyConflict             a store lost an optimistic-concurrency race
    │   ├── DuplicateRequest            the idempotency record was written concurrently
    │   └── Contended                   another request's write held the item: unknown
    ├── DeadlineExceeded                503  not enough time left to start or finish
    └── StoreUnavailable                503  the store is throttled or down
        └── StoreBusy                   503  another writer holds it (raised only to
                                             callers that asked not to wait)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orders_core.application._idempotency import IdempotencyRecord


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing field: a JSON pointer into the request body and what is wrong with it."""

    pointer: str
    detail: str


class OrdersError(Exception):
    """Base of every error orders-core raises on purpose."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class RequestError(OrdersError):
    """The request is refused; retrying it unchanged will not help."""

    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedRequest(RequestError):
    status = 400
    slug = "malformed-request"
    title = "Malformed request"


class Unauthenticated(RequestError):
    """No credentials, or credentials that failed verification. ``challenge`` is the
    ``WWW-Authenticate`` value (RFC 6750 for bearer tokens); the detail never says which
    check failed beyond what the challenge's ``error`` code already tells."""

    status = 401
    slug = "unauthenticated"
    title = "Unauthenticated"

    def __init__(self, detail: str = "", challenge: str = 'Bearer realm="orders"') -> None:
        super().__init__(detail)
        self.challenge = challenge


class Forbidden(RequestError):
    """The caller is known (or, unauthenticated, where it connects from is) and may not use
    this resource: the console without the admin scope, or from a non-loopback address."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(RequestError):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(RequestError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"

    def __init__(self, detail: str, allowed: Sequence[str]) -> None:
        super().__init__(detail)
        self.allowed = tuple(allowed)


class InvalidTransition(RequestError):
    """``final``: the order is in a terminal status, so no later command can make this
    transition possible (a queue consumer dead-letters it instead of retrying)."""

    status = 409
    slug = "invalid-transition"
    title = "Invalid status transition"

    def __init__(self, detail: str = "", *, final: bool = False) -> None:
        super().__init__(detail)
        self.final = final


class NotRedeliverable(RequestError):
    """A redelivery asked for an event that is delivered already or has not failed yet."""

    status = 409
    slug = "not-redeliverable"
    title = "Event not redeliverable"


class PreconditionFailed(RequestError):
    """``final``: the order is past the version asked for, which versions never return to."""

    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"

    def __init__(self, detail: str = "", *, final: bool = False) -> None:
        super().__init__(detail)
        self.final = final


class PayloadTooLarge(RequestError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(RequestError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ValidationFailed(RequestError):
    status = 422
    slug = "validation-failed"
    title = "Validation failed"

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.errors = tuple(errors)


class IdempotencyKeyReused(RequestError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different payload"


class ConcurrencyConflict(OrdersError):
    """The store refused a commit because the state it was based on has changed.

    Never shown to callers as such: the service retries or turns it into 412/409.
    """

    status = 409
    slug = "concurrency-conflict"
    title = "Concurrent modification"


class DuplicateRequest(ConcurrencyConflict):
    """Another request committed the same idempotency key first; replay its answer.

    ``record``: the key's record as the write found it in its way, when the refusal carried
    it (DynamoDB returns the item that failed a condition): the service replays a live one
    without reading the key. None: the service reads the key.
    """

    def __init__(self, detail: str = "", *, record: IdempotencyRecord | None = None) -> None:
        super().__init__(detail)
        self.record = record


class Contended(ConcurrencyConflict):
    """The store could not write because another request's write (a DynamoDB transaction)
    held the item, which may or may not change it: the service decides again after a
    moment, never concluding that the order changed (no 412 on this alone)."""


class DeadlineExceeded(OrdersError):
    status = 503
    slug = "deadline-exceeded"
    title = "Deadline exceeded"
    retry_after = 1


class StoreUnavailable(OrdersError):
    status = 503
    slug = "store-unavailable"
    title = "Store unavailable"
    retry_after = 1


class StoreBusy(StoreUnavailable):
    """A unit of work asked to begin without waiting (``unit_of_work(wait=False)``) found
    another writer holding the store. Nothing ran; the caller may wait for it elsewhere (an
    event loop hands the work to a thread that may block)."""
