"""Where the relay publishes: JSON lines (stdout or a file), an HTTP webhook, or callbacks.

Chosen with ``--sink``: ``stdout``, ``file:PATH``, ``webhook:URL``, or ``none`` (no relay;
events wait in the outbox, see ``orders-local events``).
"""

from __future__ import annotations

import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from orders_core.application import EventPublisher
from orders_core.domain import DomainEvent


class PublishFailed(Exception):
    """The sink did not take an event; the relay retries from it.

    ``delivered`` counts the events of the batch that did go out before the failure.
    """

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


class JsonLinesSink(EventPublisher):
    """One structured-mode CloudEvent (``application/cloudevents+json``) per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    @classmethod
    def to_file(cls, path: str | Path) -> JsonLinesSink:
        return cls(open(path, "a", encoding="utf-8"))

    def publish(self, events: Sequence[DomainEvent]) -> None:
        lines = "".join(e.to_structured_json().decode() + "\n" for e in events)
        with self._lock:
            self._stream.write(lines)
            self._stream.flush()

    def close(self) -> None:
        if self._stream not in (sys.stdout, sys.stderr):
            self._stream.close()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follows no redirect, so a 3xx reaches the caller as an HTTPError. Following one
    turned a 301-303 into a body-less GET whose 2xx counted as delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSink(EventPublisher):
    """POSTs each event in CloudEvents HTTP binary mode; only a 2xx answer is delivery (as
    in Knative's delivery contract): anything else, a 3xx included, is a failed attempt.

    Retries are the relay's job (backoff with jitter, nothing dropped); this sink makes one
    attempt per call, bounded by ``timeout``, and follows no redirect.
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        self.url = url
        self.timeout = timeout
        # Called directly: environment proxies are not used (the target is usually local).
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        from cloudevents.core.bindings.http import to_binary
        from cloudevents.core.formats.json import JSONFormat

        for done, event in enumerate(events):
            message = to_binary(event.to_cloudevent(), JSONFormat())
            request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
                self.url, data=message.body, headers=message.headers, method="POST"
            )
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                where = exc.headers.get("location") if 300 <= exc.code < 400 else None
                moved = f" (redirect to {where}, not followed)" if where else ""
                raise PublishFailed(f"webhook answered {exc.code}{moved}", done) from None
            except (urllib.error.URLError, OSError) as exc:
                raise PublishFailed(f"webhook unreachable: {exc}", done) from None


class CallbackSink(EventPublisher):
    """In-process subscribers, for tests and for embedding the runtime in an application."""

    def __init__(self, *subscribers: Callable[[DomainEvent], None]) -> None:
        self.subscribers = list(subscribers)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            for subscriber in self.subscribers:
                subscriber(event)


def sink_from_spec(spec: str) -> EventPublisher | None:
    """Parse ``--sink``; None means no relay."""
    factory = _factory(spec)
    return None if factory is None else factory()


def check_sink_spec(spec: str) -> None:
    """Raise ValueError for a ``--sink`` that another process will open (nothing opens here)."""
    _factory(spec)


def _factory(spec: str) -> Callable[[], EventPublisher] | None:
    if spec == "none":
        return None
    if spec == "stdout":
        return lambda: JsonLinesSink(sys.stdout)
    if spec.startswith("file:") and len(spec) > 5:
        path = spec[5:]
        return lambda: JsonLinesSink.to_file(path)
    if spec.startswith("webhook:"):
        webhook = WebhookSink(spec[8:])  # checks the URL; connects to nothing
        return lambda: webhook
    raise ValueError(f"unknown sink {spec!r}: use stdout, file:PATH, webhook:URL or none")
