"""Domain events to NATS JetStream, behind the core's publisher port.

An event is delivered when JetStream acknowledges it (a PubAck: stored in a stream); a
PubAck flagged ``duplicate`` is delivery too (the stream had it, from an earlier attempt).
Messages go out pipelined, in *segments*: runs of the batch in commit order holding at most
one event per order (CloudEvent subject). A segment is acknowledged before the next is sent,
and the first failure ends the batch, so an order's later event never reaches the stream
before an earlier one that failed; without failures the stream holds the commit order.

nats-py is asyncio and its connection belongs to one event loop; the relay publishes from a
plain thread. So the publisher owns one loop thread (:class:`~orders_nats._loop.LoopThread`)
and one connection on it, kept between batches (with its pings and reconnection), and each
``publish`` waits for a coroutine there: docs/decisions/0020-nats-publisher.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from orders_core.application import EventPublisher, PublishFailed, Unaccepted
from orders_core.domain import DomainEvent
from orders_nats._loop import LoopThread
from orders_nats.binding import EXPECTED_STREAM, TooLarge, Unpublishable, headers_and_body
from orders_nats.config import NatsConfig

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

log = logging.getLogger("orders_nats")


class NatsPublishFailed(PublishFailed):
    """:class:`~orders_core.application.PublishFailed` that also says how many events from the
    batch's start were accepted: the relay marks those delivered and retries from the next
    (an accepted event after that point is stored once all the same: ``Nats-Msg-Id``)."""

    def __init__(self, failed: Sequence[Unaccepted], delivered: int) -> None:
        super().__init__(failed)
        self.delivered = delivered


MAX_RUN: Final = 1000
"""Messages in flight at most, so one batch cannot swamp the server's reply queue."""


def segments(events: Sequence[DomainEvent]) -> list[range]:
    """Consecutive runs of ``events`` with no CloudEvent subject (order) twice in one run,
    each at most :data:`MAX_RUN` long."""
    runs: list[range] = []
    start, seen = 0, set[str]()
    for i, event in enumerate(events):
        if event.subject in seen or i - start == MAX_RUN:
            runs.append(range(start, i))
            start, seen = i, set()
        seen.add(event.subject)
    if start < len(events):
        runs.append(range(start, len(events)))
    return runs


class NatsPublisher(EventPublisher):
    """Publishes each event as one JetStream message (CloudEvents NATS binding).

    Connects on the first ``publish`` (a server that is down at start-up is a failed
    publish, which the relay retries), then keeps the connection: nats-py reconnects on its
    own, for ever, and a publish meanwhile fails after ``ack_timeout``. Never creates or
    changes a stream: that is the operator's (and needs rights a publisher should not hold).
    """

    def __init__(self, config: NatsConfig) -> None:
        self.config = config
        self._lock = threading.Lock()  # one batch at a time: segments must not interleave
        self._loop: LoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._closed = False
        self._last_error = ""
        self._auth_error = ""  # the last refused credential, kept past later resets

    @classmethod
    def from_spec(cls, spec: str, env: Mapping[str, str] | None = None) -> NatsPublisher:
        return cls(NatsConfig.from_spec(spec, env))

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if not events:
            return
        events = list(events)
        runs = segments(events)
        with self._lock:
            if self._closed:
                raise RuntimeError("the NATS publisher is closed")
            if self._loop is None:
                self._loop = LoopThread("nats-publisher")
            # The coroutine bounds every wait itself; this is the backstop.
            budget = self.config.connect_timeout + self.config.ack_timeout * len(runs) + 1.0
            try:
                accepted, failed = self._loop.run(self._publish(events, runs), budget)
            except TimeoutError as exc:
                accepted, failed = (
                    set(),
                    {i: Unaccepted(e, "Timeout", str(exc)) for i, e in enumerate(events)},
                )
        if len(accepted) == len(events):
            return
        delivered = next(i for i in range(len(events)) if i not in accepted)
        why = failed[delivered].message if delivered in failed else ""
        raise NatsPublishFailed(
            [
                failed.get(i) or Unaccepted(e, "NotSent", f"after an earlier failure: {why}")
                for i, e in enumerate(events)
                if i not in accepted
            ],
            delivered,
        )

    async def _publish(
        self, events: list[DomainEvent], runs: list[range]
    ) -> tuple[set[int], dict[int, Unaccepted]]:
        accepted: set[int] = set()
        failed: dict[int, Unaccepted] = {}
        try:
            js = await self._connected()
        except Exception as exc:
            # A refused credential is the error to name, even when a later attempt of the
            # same connect saw only the socket the server then reset.
            reason = self._auth_error or self._last_error or f"{type(exc).__name__}: {exc}"
            for i, event in enumerate(events):
                failed[i] = Unaccepted(event, "Unreachable", f"cannot connect to NATS: {reason}")
            return accepted, failed
        for run in runs:
            sends: list[tuple[int, Coroutine[Any, Any, PubAck]]] = []
            for i in run:
                try:
                    sends.append((i, self._send(js, events[i])))
                except Unpublishable as exc:  # TooLarge too
                    failed[i] = Unaccepted(events[i], type(exc).__name__, str(exc), retryable=False)
                    break
            # gather starts the sends in order; each puts its message on the wire before it
            # waits, so the segment goes out pipelined, in commit order.
            acks = await asyncio.gather(*(send for _, send in sends), return_exceptions=True)
            for (i, _), ack in zip(sends, acks, strict=True):
                if isinstance(ack, BaseException):
                    failed[i] = _refusal(events[i], ack, self.config.ack_timeout)
                else:
                    accepted.add(i)  # a duplicate PubAck too: the stream has it
            if failed:
                break
        return accepted, failed

    def _send(self, js: JetStreamContext, event: DomainEvent) -> Coroutine[Any, Any, PubAck]:
        """The publish of one event, checked first: a message over the server's max_payload
        would make nats-server close the connection (nats-py counts the body only)."""
        subject = self.config.subject.render(event)
        headers, body = headers_and_body(event, self.config.mode)
        if self.config.stream is not None:
            headers[EXPECTED_STREAM] = self.config.stream
        size = len(body) + 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())
        limit = self._nc.max_payload if self._nc is not None else 1024 * 1024
        if size > limit:
            raise TooLarge(f"{size} bytes with headers, over the server's max_payload of {limit}")
        # js.publish, not publish_async: nats-py 2.16 drops an async publish's API error (its
        # reply handler raises instead of failing the future), which would read as a timeout.
        return js.publish(subject, body, timeout=self.config.ack_timeout, headers=headers)

    async def _connected(self) -> JetStreamContext:
        if self._nc is not None and self._js is not None and not self._nc.is_closed:
            return self._js
        from nats.aio.client import Client

        nc = Client()
        try:
            await asyncio.wait_for(nc.connect(**self._options()), self.config.connect_timeout)
        except BaseException:
            with contextlib.suppress(Exception):  # a half-made client; its error is told
                await nc.close()
            raise
        self._nc, self._js = nc, nc.jetstream(timeout=self.config.ack_timeout)
        self._last_error = self._auth_error = ""
        log.info("connected to NATS", extra={"server": _where(nc)})
        return self._js

    def _options(self) -> dict[str, Any]:
        config, auth = self.config, self.config.auth
        options: dict[str, Any] = {
            "servers": list(config.servers),
            "name": "orders-core relay",
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # the relay retries for ever; so does the link
            "reconnect_time_wait": config.reconnect_wait,
            "connect_timeout": max(1, int(config.connect_timeout)),
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnect,
            "reconnected_cb": self._on_reconnect,
        }
        if any(s.startswith("tls://") for s in config.servers):
            options["tls"] = ssl.create_default_context()
        if auth.creds_file:
            options["user_credentials"] = auth.creds_file
        elif auth.token:
            options["token"] = auth.token
        elif auth.user:
            options["user"], options["password"] = auth.user, auth.password
        return options

    async def _on_error(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self._last_error:  # once per kind, not once per reconnection attempt
            log.warning("NATS connection error", extra={"error": error})
        self._last_error = error
        if "Authorization" in error:  # nats-py's AuthorizationError, or the server's -ERR
            self._auth_error = error

    async def _on_disconnect(self) -> None:
        if not self._closed:  # nats-py says so on close() too
            log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnect(self) -> None:
        log.info("reconnected to NATS", extra={"server": _where(self._nc)})

    def close(self) -> None:
        """Close the connection (flushing what it buffered) and stop the loop thread."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._nc is not None:
            try:
                loop.run(self._nc.close(), self.config.connect_timeout)
            except Exception as exc:
                log.warning("the NATS connection did not close cleanly: %s", type(exc).__name__)
        loop.close()


def _refusal(event: DomainEvent, exc: BaseException, timeout: float) -> Unaccepted:
    """Name what went wrong in nats-py's terms (they never carry our credentials)."""
    from nats import errors
    from nats.js import errors as js_errors

    if isinstance(exc, js_errors.NoStreamResponseError):
        return Unaccepted(
            event,
            "NoStream",
            "no JetStream stream stores this subject (create one, e.g. nats stream add "
            "ORDERS --subjects 'orders.events.>')",
        )
    if isinstance(exc, js_errors.APIError):
        return Unaccepted(event, f"APIError:{exc.err_code}", str(exc.description))
    if isinstance(exc, (errors.TimeoutError, asyncio.TimeoutError)):
        return Unaccepted(event, "AckTimeout", f"no PubAck within {timeout:g} s")
    if isinstance(exc, (errors.BadHeaderError, errors.BadSubjectError, errors.MaxPayloadError)):
        return Unaccepted(event, type(exc).__name__, str(exc), retryable=False)
    return Unaccepted(event, type(exc).__name__, str(exc) or type(exc).__name__)


def _where(nc: Client | None) -> str:
    url = nc.connected_url if nc is not None else None
    return f"{url.hostname}:{url.port}" if url is not None else "?"
