"""Where the relay publishes, chosen with ``--sink``; each spec is checked before anything
opens (``check_sink_spec``), so a bad one stops ``orders-local serve`` at start::

    stdout                          JSON lines (structured CloudEvents) on stdout
    file:PATH                       the same, appended to PATH
    webhook:URL                     HTTP POST per event, CloudEvents binary mode
    webhook+binary:URL              the same, said explicitly
    webhook+structured:URL          application/cloudevents+json (Azure Event Grid topics)
    webhook+eventarc:URL            an Eventarc Advanced bus's :publish call
    nats://HOST:PORT[/SUBJECT][?stream=NAME&tls=true&timeout=S]
    nats+structured://...           NATS JetStream (the nats extra; orders_nats.config)
    none                            no relay: events wait in the outbox

Secrets never sit in a spec (the relay process gets it as an argument, the startup line
prints it): a webhook's auth header and NATS credentials come from environment variables
(``orders_local.webhook``, ``orders_nats.config``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final

from orders_core.application import EventPublisher
from orders_core.domain import DomainEvent
from orders_local.webhook import PublishFailed, WebhookSink, auth_from_env, without_userinfo

__all__ = [
    "CallbackSink",
    "JsonLinesSink",
    "PublishFailed",
    "WebhookSink",
    "check_sink_spec",
    "sink_from_spec",
]

SPECS: Final = (
    "stdout, file:PATH, webhook[+binary|+structured|+eventarc]:URL, "
    "nats[+structured]://HOST:PORT[/SUBJECT][?stream=NAME] or none"
)


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


class CallbackSink(EventPublisher):
    """In-process subscribers, for tests and for embedding the runtime in an application."""

    def __init__(self, *subscribers: Callable[[DomainEvent], None]) -> None:
        self.subscribers = list(subscribers)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            for subscriber in self.subscribers:
                subscriber(event)


def sink_from_spec(spec: str) -> EventPublisher | None:
    """Parse ``--sink``; None means no relay. The caller owns the sink (``close()`` it)."""
    factory = _factory(spec)
    return None if factory is None else factory()


def check_sink_spec(spec: str) -> None:
    """Raise ValueError for a ``--sink`` that another process will open (nothing opens here)."""
    _factory(spec)


def _factory(spec: str) -> Callable[[], EventPublisher] | None:
    """What ``spec`` builds, its settings (the environment's too) checked now."""
    if spec == "none":
        return None
    if spec == "stdout":
        return lambda: JsonLinesSink(sys.stdout)
    if spec.startswith("file:") and len(spec) > 5:
        path = spec[5:]
        return lambda: JsonLinesSink.to_file(path)
    kind, colon, target = spec.partition(":")
    if kind in ("webhook", "webhook+binary", "webhook+structured", "webhook+eventarc") and colon:
        mode = kind.partition("+")[2] or "binary"
        auth = auth_from_env(os.environ)
        WebhookSink(target, mode=mode, auth=auth)  # checks the URL; connects to nothing
        return lambda: WebhookSink(target, mode=mode, auth=auth)
    if kind in ("nats", "nats+binary", "nats+structured") and target.startswith("//"):
        return _nats(spec)
    raise ValueError(f"unknown sink {without_userinfo(spec)!r}: use {SPECS}")


def _nats(spec: str) -> Callable[[], EventPublisher]:
    if importlib.util.find_spec("nats") is None:  # nats-py, without importing it here
        raise ValueError("a nats:// sink needs the nats extra: pip install 'orders-core[nats]'")
    from orders_nats import NatsConfig, NatsPublisher

    config = NatsConfig.from_spec(spec, os.environ)
    return lambda: NatsPublisher(config)
