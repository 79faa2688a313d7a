"""Idempotency keys, request fingerprints and the replay rules.

Semantics (see ``docs/decisions/0002-idempotency.md``):

* The key is the caller's ``Idempotency-Key`` (:func:`http_key`) or, for a CloudEvent, its
  ``source`` and ``id`` (:func:`event_key`): two namespaces. It is scoped by the caller's
  principal before it is stored (:func:`scoped_key`, a domain-separated hash of principal,
  namespace and parts, each length-prefixed), so one tenant can never read, or collide
  with, another's record, and no HTTP key can pre-claim a CloudEvent's identity
  (docs/decisions/0011-principals-and-ownership.md).
* The fingerprint is a SHA-256 over the command type and its *validated, canonical* payload,
  so ``{"id":"a","qty":1}`` and ``{"sku":"a","quantity":1}`` are the same request.
* The record is committed in the same atomic write as the effect it describes. There is no
  "in progress" state: a concurrent duplicate loses the write, reads the winner's record and
  replays it. Only successful commands are recorded; a refused one may be retried.
* Same key and fingerprint: replay the stored status and body byte for byte. Same key,
  other fingerprint: :class:`~orders_core.errors.IdempotencyKeyReused` (422).
* A record expires ``ttl`` after it was written (24 h by default); an expired record is as
  good as absent and may be overwritten.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, Final

from orders_core._immutable import immutable
from orders_core.application._security import Principal
from orders_core.errors import IdempotencyKeyReused, MalformedRequest

DEFAULT_TTL: Final = timedelta(hours=24)
MAX_KEY_LENGTH: Final = 255


@immutable()
class IdempotencyRecord:
    """What a command answered, kept so a repeat can be answered the same way."""

    key: str
    fingerprint: str
    status: int
    body: bytes
    order_id: str
    version: int
    expires_at: datetime
    generation: int = 0
    """Which of the key's generations this is: a keyed create under it makes the order
    ``derived_order_id(key, generation)``. A key reused after expiry moves past an order a
    create made, and keeps the generation of a record that answered anything else."""

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def validate_key(key: str) -> str:
    """A caller-supplied key: 1 to 255 printable ASCII characters."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise MalformedRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


@immutable()
class IdempotencyKey:
    """A caller's key in its namespace: ``http`` (one part) or ``cloudevent`` (two)."""

    namespace: str
    parts: tuple[str, ...]


def http_key(key: str) -> IdempotencyKey:
    """An ``Idempotency-Key`` header's value, validated."""
    return IdempotencyKey("http", (validate_key(key),))


def event_key(source: str, event_id: str) -> IdempotencyKey:
    """The key of a CloudEvent without an explicit one: its identity, ``(source, id)``."""
    return IdempotencyKey("cloudevent", (source, event_id))


_KEY_DOMAIN: Final = b"orders-core/idempotency/v2\x00"


def scoped_key(principal: Principal, key: IdempotencyKey) -> str:
    """A fixed-length storage key that binds ``key`` to the caller who sent it.

    SHA-256 over a domain tag, then the principal's id, the namespace and each part, every
    field prefixed by its length in bytes: the encoding is injective, so no choice of
    characters in one field can make two different (principal, namespace, parts) collide.
    """
    digest = hashlib.sha256(_KEY_DOMAIN)
    for text in (principal.key_scope, key.namespace, *key.parts):
        raw = text.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    return digest.hexdigest()


def derived_order_id(key: str, generation: int = 0) -> str:
    """The id of the order a keyed create makes: a function of the scoped key.

    Concurrent duplicates of one create therefore aim at the same order, so a store can
    deduplicate with one conditional write on the order itself (DynamoDB: no transaction).
    ``generation`` moves past each order a keyed create made once its record expired, so a
    key reused after expiry makes a new order instead of colliding with the old one.
    """
    return hashlib.sha256(f"order\n{generation}\n{key}".encode()).hexdigest()[:32]


def fingerprint(command_type: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"type": command_type, "data": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def replayable(
    record: IdempotencyRecord | None, fp: str, now: datetime
) -> IdempotencyRecord | None:
    """The record to replay for a request with fingerprint ``fp``, or None to execute it."""
    if record is None or record.expired(now):
        return None
    if record.fingerprint != fp:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request payload"
        )
    return record
