"""The Firestore outbox collection as the core's :class:`~orders_core.application.Outbox`.

A mixin of :class:`orders_gcp.firestore.FirestoreStore`, which owns the client and the
collection names. An entry's ``pending`` field is its position while it waits and is deleted
on delivery, so the pending list is one single-field ordered query and the undelivered count
one aggregation over it; a delivered entry keeps its history until its ``expireAt`` (a TTL
policy in deploy/gcp removes it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from orders_core.application import Outbox, PendingEvent
from orders_core.domain import DomainEvent
from orders_gcp.calls import Refused, call
from orders_gcp.documents import Collections, position_id

if TYPE_CHECKING:
    from google.cloud.firestore import Client

DELIVERED_RETENTION: Final = timedelta(days=7)
"""How long a delivered entry stays readable (``orders-local events``-style inspection)."""
MAX_WRITES: Final = 500
"""Firestore's limit of writes in one commit."""


class FirestoreOutbox(Outbox):
    client: Client
    collections: Collections
    rpc: dict[str, Any]
    """``timeout`` and ``retry`` of every call (:func:`orders_gcp.calls.rpc_options`)."""

    def _outbox(self) -> Any:
        return self.client.collection(self.collections.outbox)

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        query = self._outbox().order_by("pending").limit(limit)
        docs = call(lambda: list(query.stream(**self.rpc)), what="read the outbox")
        return [
            PendingEvent(
                int(doc.get("position")),
                DomainEvent.from_record(json.loads(doc.get("record"))),
                int(doc.get("attempts") or 0),
            )
            for doc in docs
        ]

    def undelivered_count(self) -> int:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._outbox().where(filter=FieldFilter("pending", ">=", 0)).count()
        result = call(lambda: query.get(**self.rpc), what="count the outbox")
        return int(result[0][0].value)

    def mark_delivered(self, positions: Sequence[int]) -> None:
        from google.cloud import firestore

        expire = datetime.now(UTC) + DELIVERED_RETENTION
        self._update(
            positions,
            {
                "pending": firestore.DELETE_FIELD,
                "deliveredAt": firestore.SERVER_TIMESTAMP,
                "expireAt": expire,
            },
        )

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        from google.cloud import firestore

        self._update(positions, {"attempts": firestore.Increment(1), "lastError": error[:500]})

    def _update(self, positions: Sequence[int], fields: dict[str, Any]) -> None:
        """``fields`` on each entry, in commits of up to 500. An entry already gone (its
        retention ran out) fails its commit: those entries are then updated one by one,
        skipping the missing."""
        refs = [self._outbox().document(position_id(p)) for p in positions]
        for start in range(0, len(refs), MAX_WRITES):
            chunk = refs[start : start + MAX_WRITES]
            try:
                call(partial(self._commit_updates, chunk, fields), what="mark", commit=True)
            except Refused:
                for ref in chunk:
                    with contextlib.suppress(Refused):
                        call(partial(self._commit_updates, [ref], fields), what="mark", commit=True)

    def _commit_updates(self, refs: list[Any], fields: dict[str, Any]) -> None:
        batch = self.client.batch()
        for ref in refs:
            batch.update(ref, fields)
        batch.commit(**self.rpc)

    def events_for(self, order_id: str) -> list[DomainEvent]:
        """Every event committed for ``order_id``, delivered or not, in commit order."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._outbox().where(filter=FieldFilter("orderId", "==", order_id))
        docs = call(lambda: list(query.stream(**self.rpc)), what="read the outbox")
        docs.sort(key=lambda d: int(d.get("position")))
        return [DomainEvent.from_record(json.loads(d.get("record"))) for d in docs]
