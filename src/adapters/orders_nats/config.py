"""``--sink nats://...``: where and how the NATS publisher connects, read from the spec and
the environment.

Grammar::

    nats[+binary|+structured]://HOST[:PORT][,HOST[:PORT]...][/SUBJECT][?stream=NAME&tls=true&timeout=S]

``SUBJECT`` is a :class:`~orders_nats.binding.SubjectTemplate` (default
``orders.events.{type}``); ``stream`` names the JetStream stream that must store the events
(``Nats-Expected-Stream``: a message another stream would capture is refused, not stored
elsewhere); ``timeout`` bounds each wait for JetStream's acknowledgement (default 5 s).

Credentials never sit in the spec: it is a process argument of the relay (``ps`` shows it)
and the startup line prints it. They come from ``ORDERS_NATS_CREDS`` (a ``.creds`` file:
JWT + NKey), ``ORDERS_NATS_TOKEN``, or ``ORDERS_NATS_USER`` + ``ORDERS_NATS_PASSWORD``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl

from orders_nats.binding import MODES, SubjectTemplate

DEFAULT_PORT: Final = 4222
QUERY_KEYS: Final = ("stream", "tls", "timeout")
CREDS: Final = "ORDERS_NATS_CREDS"
TOKEN: Final = "ORDERS_NATS_TOKEN"  # noqa: S105 - a variable's name
USER: Final = "ORDERS_NATS_USER"
PASSWORD: Final = "ORDERS_NATS_PASSWORD"  # noqa: S105 - a variable's name


@dataclass(frozen=True)
class NatsAuth:
    """One way to authenticate, or none. ``repr`` never shows a secret."""

    creds_file: str | None = None
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NatsAuth:
        creds, token = env.get(CREDS) or None, env.get(TOKEN) or None
        user, password = env.get(USER) or None, env.get(PASSWORD) or None
        chosen = [name for name, v in ((CREDS, creds), (TOKEN, token), (USER, user)) if v]
        if len(chosen) > 1:
            raise ValueError(f"set one NATS credential, not {' and '.join(chosen)}")
        if password and not user:
            raise ValueError(f"{PASSWORD} is set without {USER}")
        if user and not password:
            raise ValueError(f"{USER} is set without {PASSWORD}")
        if creds and not os.access(creds, os.R_OK):
            raise ValueError(f"{CREDS}: cannot read {creds}")
        return cls(creds_file=creds, token=token, user=user, password=password)


@dataclass(frozen=True)
class NatsConfig:
    """Everything :class:`~orders_nats.publisher.NatsPublisher` needs; connects to nothing."""

    servers: tuple[str, ...] = (f"nats://127.0.0.1:{DEFAULT_PORT}",)
    subject: SubjectTemplate = field(default_factory=SubjectTemplate)
    stream: str | None = None
    mode: str = "binary"
    ack_timeout: float = 5.0
    """Seconds to wait for JetStream's acknowledgement of a wave of messages."""
    connect_timeout: float = 5.0
    """Seconds one attempt to (re)establish the connection may take before publish fails."""
    reconnect_wait: float = 0.5
    """Pause between reconnection attempts once connected (nats-py retries for ever)."""
    auth: NatsAuth = field(default_factory=NatsAuth)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"NATS content mode {self.mode!r}: use binary or structured")
        if self.stream is not None and not _stream_name(self.stream):
            raise ValueError(f"NATS stream name {self.stream!r}: letters, digits, - and _")
        if not self.servers:
            raise ValueError("no NATS server")
        for timeout in (self.ack_timeout, self.connect_timeout, self.reconnect_wait):
            if not 0 < timeout <= 300:
                raise ValueError("NATS timeouts are seconds in (0, 300]")

    @classmethod
    def from_spec(cls, spec: str, env: Mapping[str, str] | None = None) -> NatsConfig:
        """Parse a ``--sink nats://...`` spec; ValueError says what is wrong."""
        env = os.environ if env is None else env
        scheme, sep, rest = spec.partition("://")
        mode = {"nats": "binary", "nats+binary": "binary", "nats+structured": "structured"}.get(
            scheme
        )
        if not sep or mode is None:
            shown = spec if "@" not in spec else "***@" + spec.rpartition("@")[2]  # no password
            raise ValueError(f"not a NATS sink {shown!r}: nats[+binary|+structured]://HOST:PORT")
        rest, _, query = rest.partition("?")
        hosts, _, subject = rest.partition("/")
        if "@" in hosts:
            raise ValueError(
                f"the NATS sink names credentials: put them in {CREDS}, {TOKEN} or "
                f"{USER}/{PASSWORD}, not in the spec (process lists and logs show it)"
            )
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
        unknown = sorted(set(options) - set(QUERY_KEYS))
        if unknown:
            raise ValueError(f"NATS sink: unknown option(s) {', '.join(unknown)}; use {QUERY_KEYS}")
        tls = options.get("tls", "false")
        if tls not in ("true", "false"):
            raise ValueError("NATS sink: tls=true or tls=false")
        return cls(
            servers=tuple(_server(h, "tls" if tls == "true" else "nats") for h in hosts.split(",")),
            subject=SubjectTemplate(subject) if subject else SubjectTemplate(),
            stream=options.get("stream"),
            mode=mode,
            ack_timeout=_seconds(options.get("timeout", "5")),
            auth=NatsAuth.from_env(env),
        )


def _server(host_port: str, scheme: str) -> str:
    # An IPv6 address comes in brackets: [::1]:4222.
    has_port = ":" in host_port.rpartition("]")[2]
    host, colon, port = host_port.rpartition(":") if has_port else (host_port, "", "")
    if not host or host.strip() != host or any(c in host for c in "/?#"):
        raise ValueError(f"NATS server {host_port!r}: HOST[:PORT]")
    if colon and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        raise ValueError(f"NATS server {host_port!r}: the port is not 1-65535")
    return f"{scheme}://{host}:{port or DEFAULT_PORT}"


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"NATS sink: timeout={text!r} is not a number of seconds") from None


def _stream_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
