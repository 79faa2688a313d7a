"""One Pub/Sub push request -> one command through the service -> the status Pub/Sub reads.

Pub/Sub acknowledges a push answered 200, 201, 202, 204 or 102 and redelivers any other,
with the subscription's retry policy (exponential backoff) until its dead-letter policy's
``max_delivery_attempts``. So the core's rule (:func:`orders_core.application.classify`)
becomes:

=========================================  ==================================================
outcome                                    answer
=========================================  ==================================================
ok (or a replay of a command already run)  200 ``{"status": "ok", ...}``: acknowledged
retry (order not there yet, a transition   503 problem+json with Retry-After: redelivered
not allowed yet, a lost race, the store
down, the deadline)
poison (not a command CloudEvent, invalid  the message, data and attributes as they came, is
data, unknown type, a transition that can  published to the dead-letter topic, then 200
never happen)                              ``{"status": "dead-lettered"}``; without a topic,
                                           or if that publish fails, the problem's own 4xx,
                                           so Pub/Sub redelivers and its dead-letter policy
                                           keeps it: poison is never dropped
no valid token, another account            401 / 403 before anything is parsed
not a push envelope                        400 (nothing to dead-letter)
=========================================  ==================================================

The command's idempotency key is its CloudEvent identity (source, id), so a message delivered
twice (Pub/Sub is at least once) has one effect, and the second answer is the first one's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from orders_core.application import (
    Authenticator,
    Deadline,
    OrderService,
    Outcome,
    Principal,
    classify,
    event_key,
    reason,
)
from orders_core.edges.http import HttpResponse, json_response, problem_response
from orders_core.errors import OrdersError, StoreUnavailable
from orders_gcp.binding import command_from_message
from orders_gcp.pubsub import DeadLetterTopic
from orders_gcp.push import PushedMessage, pushed_message

log = logging.getLogger("orders_gcp.push")

DEFAULT_PATH: Final = "/pubsub/push"


class RetryLater(StoreUnavailable):
    """A command that may succeed later: 503 so Pub/Sub redelivers it with backoff."""

    slug = "retry-later"
    title = "Retry later"


@dataclass
class PushAnswer:
    """The response, and the fields the push's access-log line carries."""

    response: HttpResponse
    fields: dict[str, Any] = field(default_factory=dict)
    order_id: str | None = None


class PushEndpoint:
    """Runs pushed commands on ``service``; blocking (the ASGI app calls it in a thread).

    ``authenticate`` is required unless ``insecure_no_auth`` says otherwise (local
    development with the emulator, which signs nothing): then every push is the principal
    of the subscription it names.
    """

    def __init__(
        self,
        service: OrderService,
        *,
        authenticate: Authenticator | None,
        dead_letters: DeadLetterTopic | None = None,
        timeout: float = 10.0,
        path: str = DEFAULT_PATH,
        insecure_no_auth: bool = False,
    ) -> None:
        if authenticate is None and not insecure_no_auth:
            raise ValueError(
                "a push endpoint verifies the push's OIDC token: configure its audience and "
                "service account, or pass insecure_no_auth for local development"
            )
        self.service = service
        self.authenticate = authenticate
        self.dead_letters = dead_letters
        self.timeout = timeout
        self.path = path

    def handle(self, headers: Mapping[str, str], body: bytes) -> PushAnswer:
        """Answer one push (lower-case ``headers``); never raises."""
        try:
            principal = self._principal(headers)
            pushed = pushed_message(headers, body)
        except OrdersError as error:
            return PushAnswer(problem_response(error, self.path), {"problem": error.slug})
        except Exception:
            log.exception("unhandled error reading a push")
            return PushAnswer(problem_response(OrdersError(), self.path))
        fields: dict[str, Any] = {"messageId": pushed.message_id, "via": pushed.via}
        if pushed.delivery_attempt is not None:
            fields["deliveryAttempt"] = pushed.delivery_attempt
        if principal is None:
            principal = Principal.service(f"pubsub:{pushed.subscription or 'unauthenticated'}")
        try:
            command = command_from_message(pushed.data, pushed.attributes)
            fields["commandType"] = command.type
            # The service's command span continues the producer's trace (the command's
            # traceparent, from ce-traceparent), so one trace spans the Pub/Sub hop.
            result = self.service.handle(
                command,
                principal=principal,
                idempotency_key=event_key(command.source, command.id),
                deadline=Deadline.after(self.timeout),
            )
        except Exception as error:  # classified: every outcome has an answer
            return self._settle(classify(error), error, pushed, fields)
        fields.update(outcome="ok", replayed=result.replayed)
        body_out = {"status": "ok", "orderId": result.order_id, "replayed": result.replayed}
        return PushAnswer(json_response(200, _json(body_out)), fields, result.order_id)

    def _principal(self, headers: Mapping[str, str]) -> Principal | None:
        return None if self.authenticate is None else self.authenticate(headers)

    def _settle(
        self, outcome: Outcome, error: BaseException, pushed: PushedMessage, fields: dict[str, Any]
    ) -> PushAnswer:
        label = reason(error)
        fields.update(outcome=outcome.value, problem=label)
        if outcome is Outcome.RETRY:
            log.warning("pushed command failed; Pub/Sub will redeliver it", extra=dict(fields))
            if isinstance(error, StoreUnavailable):
                problem: OrdersError = error
            else:
                problem = RetryLater(f"the command may succeed later ({label})")
            return PushAnswer(problem_response(problem, self.path), fields)
        if self.dead_letters is not None and self.dead_letters.send(
            pushed.data,
            pushed.attributes,
            label,
            message_id=pushed.message_id,
            subscription=pushed.subscription,
        ):
            fields["outcome"] = "dead-lettered"
            log.warning("poison command dead-lettered", extra=dict(fields))
            return PushAnswer(
                json_response(200, _json({"status": "dead-lettered", "problem": label})), fields
            )
        log.warning(
            "poison command left to the subscription's dead-letter policy", extra=dict(fields)
        )
        refused = error if isinstance(error, OrdersError) else OrdersError()
        return PushAnswer(problem_response(refused, self.path), fields)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
