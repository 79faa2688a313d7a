"""Outcomes of a command from an at-least-once source: ok, retry later, or poison.

SQS, EventBridge (and later Pub/Sub) consumers share this one rule, so a command is retried
or dead-lettered the same way whichever queue or bus brought it. Queues are unordered
(standard SQS) and events race each other: a confirm can arrive before its create, a fulfill
before its confirm. Such a command **may succeed later** and is retried; the source's redrive
policy (maxReceiveCount, retry attempts) is the backstop that dead-letters it eventually,
content and all. Only a command that **can never succeed** is poison: dead-lettered at once.

=====================================================  =======
outcome                                                class
=====================================================  =======
not a CloudEvent, malformed, invalid data, unknown     poison
type, key reused with another payload, too large
a transition to a status the order can no longer       poison
reach (cancel a FULFILLED one, confirm a CONFIRMED
one), a precondition on a version already passed
order not found (yet), transition not allowed yet,     retry
a precondition on a version not reached yet, a lost
race, store unavailable, deadline, anything unexpected
=====================================================  =======
"""

from __future__ import annotations

from enum import StrEnum

from orders_core.errors import (
    InvalidTransition,
    NotFound,
    OrdersError,
    PreconditionFailed,
    RequestError,
)


class Outcome(StrEnum):
    OK = "ok"
    RETRY = "retry"
    POISON = "poison"


def classify(error: BaseException) -> Outcome:
    """What a consumer does with a command that raised ``error``."""
    if isinstance(error, InvalidTransition | PreconditionFailed):
        return Outcome.POISON if error.final else Outcome.RETRY
    if isinstance(error, NotFound):
        return Outcome.RETRY
    if isinstance(error, RequestError):
        return Outcome.POISON
    return Outcome.RETRY  # transient (store, deadline, a lost race) or unknown: retry


def reason(error: BaseException) -> str:
    """A short, safe label for logs and dead-letter attributes (no message text)."""
    return error.slug if isinstance(error, OrdersError) else type(error).__name__
