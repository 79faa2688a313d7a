"""Firestore's errors translated into the core's, in one place, and retried where safe.

``google.api_core`` raises one exception class per gRPC status. What each means here:

================================================  ==============================================
status                                            becomes
================================================  ==============================================
ABORTED, UNAVAILABLE, DEADLINE_EXCEEDED,          retried (reads always; a commit only because
INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED             its preconditions and commit token make a
                                                  second attempt safe), then StoreUnavailable
FAILED_PRECONDITION, ALREADY_EXISTS on a commit   :class:`Refused`: a write's precondition
                                                  failed; the store decides what that means
FAILED_PRECONDITION on a query                    StoreUnavailable (a composite index missing:
                                                  deploy firestore.indexes, see deploy/gcp)
NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED     StoreUnavailable (no database, or no role)
================================================  ==============================================
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from orders_core.errors import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("orders_gcp.firestore")

ATTEMPTS: Final = 3
"""Tries of one call on transient errors; within each, the SDK retries UNAVAILABLE and
INTERNAL for up to the store's timeout (:func:`rpc_options`)."""
BASE_DELAY: Final = 0.05


def rpc_options(timeout: float) -> dict[str, Any]:
    """``timeout`` and ``retry`` for every Firestore call: the SDK's own default retries a
    read for up to 60 s (300 s for a query), which would hold a request long past its
    deadline while the database is unreachable."""
    from google.api_core import retry

    return {
        "timeout": timeout,
        "retry": retry.Retry(initial=0.05, maximum=1.0, multiplier=2.0, timeout=timeout),
    }


class Refused(Exception):
    """A commit's precondition failed (a document exists, or changed since it was read)."""


def _transient() -> tuple[type[Exception], ...]:
    from google.api_core import exceptions as gax

    return (
        gax.Aborted,
        gax.ServiceUnavailable,
        gax.DeadlineExceeded,
        gax.InternalServerError,
        gax.Unknown,
        gax.ResourceExhausted,
        gax.RetryError,
    )


def call(operation: Callable[[], T], *, what: str, commit: bool = False) -> T:
    """Run one Firestore call, retrying transient failures with jittered backoff.

    ``commit``: the call is a write whose preconditions fail if it already landed, so a
    precondition failure becomes :class:`Refused` for the caller to judge (the store's
    commit token tells "already ours" from "someone else's").
    """
    from google.api_core import exceptions as gax

    transient = _transient()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return operation()
        except (gax.FailedPrecondition, gax.AlreadyExists, gax.NotFound) as exc:
            if commit:
                raise Refused(str(exc)) from exc
            raise StoreUnavailable(f"Firestore refused to {what}") from exc
        except transient as exc:
            if attempt == ATTEMPTS:
                raise StoreUnavailable(f"Firestore is unavailable ({what})") from exc
            log.debug("transient Firestore error, retrying", extra={"error": type(exc).__name__})
            time.sleep(BASE_DELAY * 2 ** (attempt - 1) * (0.5 + random.random() / 2))
        except gax.GoogleAPICallError as exc:  # permission, authentication, bad database
            raise StoreUnavailable(f"Firestore refused to {what}") from exc
    raise AssertionError("unreachable")  # pragma: no cover
