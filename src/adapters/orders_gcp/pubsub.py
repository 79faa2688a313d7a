"""Domain events -> a Pub/Sub topic, behind the core's publisher port (the relay drives it).

Messages are in the CloudEvents Pub/Sub binding (:func:`orders_gcp.binding.message_of`), with
the order id as ordering key: the client is built with message ordering on, so one order's
events are sent in outbox order, and a subscription with ordering enabled delivers them so.

:meth:`PubSubPublisher.publish` sends the whole batch (the client groups messages into
requests), then waits for every message's answer. Messages Pub/Sub did not accept are
reported together in one :class:`~orders_core.application.PublishFailed`; each failed
ordering key is resumed (the client pauses a key after a failure, so later messages of that
order are refused rather than sent out of order) and its events are retried by the relay.
``INVALID_ARGUMENT`` (a message too large, a bad attribute) is the one answer not worth
retrying; anything else (unavailable, deadline, a missing topic or role, which an operator
can fix) is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from orders_core.application import EventPublisher, PublishFailed, Unaccepted
from orders_core.domain import DomainEvent
from orders_gcp.binding import message_of

if TYPE_CHECKING:
    from google.cloud.pubsub_v1 import PublisherClient

log = logging.getLogger("orders_gcp.pubsub")

DEFAULT_TIMEOUT: Final = 30.0


def publisher_client(*, ordering: bool = True) -> PublisherClient:
    """A publisher client for the environment (``PUBSUB_EMULATOR_HOST`` for the emulator),
    with message ordering on unless asked otherwise."""
    from google.cloud import pubsub_v1

    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=ordering)
    return pubsub_v1.PublisherClient(publisher_options=options)


def topic_path(topic: str, project: str) -> str:
    """``projects/<project>/topics/<topic>`` for a bare name; a full path as it is."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


class PubSubPublisher(EventPublisher):
    """Publishes to one topic (a full ``projects/.../topics/...`` path). The client is
    injected; without one, :func:`publisher_client`."""

    def __init__(
        self,
        topic: str,
        client: PublisherClient | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.topic = topic
        self.client = client if client is not None else publisher_client()
        self.timeout = timeout

    def publish(self, events: Sequence[DomainEvent]) -> None:
        from google.api_core import retry as retries

        retry = retries.Retry(timeout=self.timeout)
        sent: list[tuple[DomainEvent, str, Any]] = []
        for event in events:
            message = message_of(event)
            future = self.client.publish(
                self.topic,
                message.data,
                ordering_key=message.ordering_key,
                retry=retry,
                timeout=self.timeout,
                **message.attributes,
            )
            sent.append((event, message.ordering_key, future))
        failed: list[Unaccepted] = []
        for event, key, future in sent:
            try:
                future.result(timeout=self.timeout)
            except Exception as error:
                failed.append(_unaccepted(event, error))
                self.client.resume_publish(self.topic, key)
        if failed:
            log.warning(
                "Pub/Sub did not accept %d of %d event(s)",
                len(failed),
                len(sent),
                extra={"topic": self.topic, "error": failed[0].code},
            )
            raise PublishFailed(failed)


def _unaccepted(event: DomainEvent, error: BaseException) -> Unaccepted:
    from google.api_core import exceptions as gax

    code = type(error).__name__
    retryable = not isinstance(error, gax.InvalidArgument)
    return Unaccepted(event, code, str(error)[:200], retryable=retryable)


POISON_ATTRIBUTES: Final = (
    "orders-poison-reason",
    "orders-source-message-id",
    "orders-source-subscription",
)
MAX_ATTRIBUTES: Final = 100


def _publish_request(client: Any) -> Callable[..., Any]:
    """The API's own Publish for ``client``: the generated client's method, which the
    batching client derives from and shadows. It takes the attributes as a map; the
    batching ``publish`` takes them as keywords, where legal names (``topic``, ``data``,
    ``ordering_key``, ``retry``, ``timeout``) collide with its parameters, so a poison
    message carrying one could never be dead-lettered. A stand-in client (tests) that is
    not a generated one gives ``publish_request`` itself."""
    from google.pubsub_v1.services.publisher.client import PublisherClient as Api

    if isinstance(client, Api):
        return functools.partial(Api.publish, client)
    return client.publish_request  # type: ignore[no-any-return]


class DeadLetterTopic:
    """Where the push endpoint sends poison commands, content and all: the message's data
    and attributes as they arrived, plus why (``orders-poison-reason``, a problem slug) and
    where from (``orders-source-message-id``, ``orders-source-subscription``)."""

    def __init__(
        self, topic: str, client: PublisherClient | None = None, *, timeout: float = 10.0
    ) -> None:
        self.topic = topic
        self.client = client if client is not None else publisher_client(ordering=False)
        self.timeout = timeout

    def send(
        self,
        data: bytes,
        attributes: dict[str, str],
        reason: str,
        *,
        message_id: str,
        subscription: str,
    ) -> bool:
        """Publish and wait for Pub/Sub to accept it; False (logged) when it did not, so the
        caller leaves the message to its subscription's own redelivery and dead-lettering."""
        ours = dict(
            zip(POISON_ATTRIBUTES, (reason, message_id or "-", subscription or "-"), strict=True)
        )
        kept = {k: v for k, v in attributes.items() if k not in ours}
        if len(kept) + len(ours) > MAX_ATTRIBUTES:  # Pub/Sub's limit: ours win, data stays whole
            kept = dict(list(kept.items())[: MAX_ATTRIBUTES - len(ours)])
        message = {"data": data, "attributes": {**kept, **ours}}
        try:
            request = {"topic": self.topic, "messages": [message]}
            _publish_request(self.client)(request=request, timeout=self.timeout)
        except Exception as error:
            log.warning(
                "could not dead-letter a poison message",
                extra={"topic": self.topic, "error": type(error).__name__, "messageId": message_id},
            )
            return False
        return True
