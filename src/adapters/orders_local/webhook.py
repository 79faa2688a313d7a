"""The CloudEvents HTTP webhook: a Knative broker, an Azure Event Grid topic, any endpoint.

One POST per event over one kept-alive connection, in a content mode of the CloudEvents
HTTP binding: *binary* (``ce-*`` headers, the data as the body; the default) or
*structured* (``application/cloudevents+json``); or *eventarc*, the structured event as the
``jsonMessage`` of an Eventarc Advanced bus's ``:publish`` call (its only HTTP way in).
Only a whole 2xx answer is delivery (Knative's delivery contract; one cut off before the end
of its headers or of its Content-Length is not, RFC 9112 section 8); a 3xx is a failed attempt and
never followed (a 301-303 would turn the POST into a body-less GET whose 2xx counted as
delivery); every request ends within ``timeout``, however slowly the receiver answers.

One header authenticates, from the environment: ``ORDERS_WEBHOOK_AUTH_HEADER`` holds
``Name: value`` (``aeg-sas-key: ...``, ``Authorization: Bearer ...``), or
``ORDERS_WEBHOOK_TOKEN_FILE`` names a file holding a bearer token, read again whenever it
changes (rotating tokens: Kubernetes projected service-account tokens for Knative's OIDC,
Entra ID, Google access tokens). Its value is never logged, never part of an error message
and never in a repr.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Final
from urllib.parse import quote, urlsplit

from orders_core.application import EventPublisher
from orders_core.domain import DomainEvent

log = logging.getLogger("orders_local.webhook")

MODES: Final = ("binary", "structured", "eventarc")
AUTH_HEADER_ENV: Final = "ORDERS_WEBHOOK_AUTH_HEADER"
TOKEN_FILE_ENV: Final = "ORDERS_WEBHOOK_TOKEN_FILE"  # noqa: S105 - a variable's name
MAX_AUTH: Final = 8192
"""Characters of an auth value: an Entra ID or Google token takes 1-3 KB, and many servers
refuse a header line over 8 KiB (431) anyway."""
MAX_ANSWER: Final = 64 * 1024
"""Bytes of a response body read; a longer one closes the connection instead of draining."""
STRUCTURED: Final = "application/cloudevents+json; charset=utf-8"
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")  # an RFC 9110 token
_OURS: Final = frozenset(
    {"host", "content-type", "content-length", "transfer-encoding", "connection"}
)
# Printable ASCII less space, double quote and percent stay as they are (binding 3.1.3.2).
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


class PublishFailed(Exception):
    """The sink did not take an event; the relay retries from it.

    ``delivered`` counts the events of the batch that did go out before the failure.
    """

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


@dataclass(frozen=True)
class AuthHeader:
    """One header sent with every request; ``repr`` hides the value."""

    name: str
    value: str = field(repr=False)

    @classmethod
    def parse(cls, line: str, where: str = AUTH_HEADER_ENV) -> AuthHeader:
        """``Name: value``; ValueError names what is wrong, never echoing the value."""
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip(" \t")
        if not colon or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{where}: want 'Name: value' with an HTTP header name")
        if name.lower() in _OURS or name.lower().startswith("ce-"):
            raise ValueError(f"{where}: {name} is a header the webhook sets itself")
        return cls(name, _checked_value(value, where))


def _checked_value(value: str, where: str) -> str:
    if not value:
        raise ValueError(f"{where}: the value is empty")
    if len(value) > MAX_AUTH:
        raise ValueError(f"{where}: the value is over {MAX_AUTH} characters")
    if any(c in "\r\n\0" for c in value):
        raise ValueError(f"{where}: the value holds CR, LF or NUL (header injection)")
    if not all(c == "\t" or " " <= c <= "~" for c in value):
        raise ValueError(f"{where}: the value holds a control or non-ASCII character")
    return value


class TokenFile:
    """``Authorization: Bearer <the file's content>``, read again when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._header: AuthHeader | None = None
        self.header()  # unreadable or invalid now: a configuration error, said at start

    def header(self) -> AuthHeader:
        status = os.stat(self.path)
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp != self._stamp or self._header is None:
            with open(self.path, encoding="ascii", errors="replace") as file:
                token = file.read(MAX_AUTH + 1).strip()
            value = _checked_value(token, TOKEN_FILE_ENV)
            self._header, self._stamp = AuthHeader("Authorization", f"Bearer {value}"), stamp
        return self._header


def auth_from_env(env: Mapping[str, str]) -> AuthHeader | TokenFile | None:
    header, token_file = env.get(AUTH_HEADER_ENV), env.get(TOKEN_FILE_ENV)
    if header and token_file:
        raise ValueError(f"set {AUTH_HEADER_ENV} or {TOKEN_FILE_ENV}, not both")
    if token_file:
        try:
            return TokenFile(token_file)
        except OSError as exc:
            raise ValueError(
                f"{TOKEN_FILE_ENV}: cannot read {token_file}: {exc.strerror}"
            ) from None
    return AuthHeader.parse(header) if header else None


def binary_headers(event: DomainEvent) -> dict[str, str]:
    """The HTTP binding's binary mode: ``ce-<name>`` per attribute, percent-encoded, and
    ``datacontenttype`` as Content-Type."""
    headers = {}
    for name, value in event.attributes().items():
        if name == "datacontenttype":
            headers["Content-Type"] = str(value)
            continue
        text = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
        headers[f"ce-{name}"] = quote(str(text), safe=_SAFE)
    return headers


class _Deadline:
    """Shuts a request's socket down when the request outlives its deadline: a receiver
    that trickles its answer byte by byte keeps every read within the socket timeout, for as
    long as it likes. One thread per sink, started on first use."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: tuple[float, socket.socket] | None = None
        self._fired = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="webhook-deadline", daemon=True
                )
                self._thread.start()
            self._armed, self._fired = (time.monotonic() + seconds, sock), False
            self._cond.notify()

    def disarm(self) -> bool:
        """Whether the deadline passed (and the socket was shut down)."""
        with self._cond:
            self._armed = None
            return self._fired

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._armed is None:
                    self._cond.wait()
                    continue
                deadline, sock = self._armed
                if (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                    continue
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                self._armed, self._fired = None, True


class _HeadLines:
    """A response's file while ``begin`` reads the head from it, a line at a time: the last
    line read is the header section's end."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self.last = b""

    def readline(self, limit: int = -1) -> bytes:
        self.last = self._fp.readline(limit)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


class _Response(http.client.HTTPResponse):
    """Knows whether its header section ended in the empty line (RFC 9112 section 2.1):
    http.client takes the end of input for the end of the headers as well."""

    head_complete = False

    def begin(self) -> None:
        if self.headers is not None:
            return
        fp, lines = self.fp, _HeadLines(self.fp)
        self.fp = lines
        try:
            super().begin()
        finally:
            self.fp = fp
        self.head_complete = lines.last in (b"\r\n", b"\n")


def _cut_off(response: http.client.HTTPResponse, answer: bytes) -> str:
    """Why an answer is incomplete (RFC 9112 section 8), or "": the connection closed
    within its header section or before its Content-Length was read. A body longer than
    MAX_ANSWER is left unread on purpose, not cut off."""
    if not (isinstance(response, _Response) and response.head_complete):
        return "the connection closed within the header section"
    if response.length and len(answer) <= MAX_ANSWER:
        declared = len(answer) + response.length
        return f"the connection closed after {len(answer)} of {declared} body bytes"
    return ""


class WebhookSink(EventPublisher):
    """POSTs each event to ``url``; one attempt per event, bounded by ``timeout`` seconds
    (connecting included), stopping at the first failure. Retries are the relay's job
    (backoff with jitter, nothing dropped). Environment proxies are not used."""

    def __init__(
        self,
        url: str,
        *,
        mode: str = "binary",
        timeout: float = 5.0,
        auth: AuthHeader | TokenFile | None = None,
    ) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:  # its message may quote the netloc, userinfo and all
            raise ValueError(f"webhook URL does not parse: {without_userinfo(url)!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://HOST...: {without_userinfo(url)!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"webhook URL carries credentials: put them in {AUTH_HEADER_ENV}")
        if mode not in MODES:
            raise ValueError(f"webhook mode {mode!r}: use {', '.join(MODES)}")
        if not 0 < timeout <= 300:
            raise ValueError("webhook timeout: seconds in (0, 300]")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:  # "could not be cast ... as 'pa'": a password's "/" ends the netloc
            raise ValueError(
                f"webhook URL port out of range or not a number: {without_userinfo(url)!r}"
            ) from None
        self.url, self.mode, self.timeout, self.auth = url, mode, timeout, auth
        self._parts = parts
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._held: list[http.client.HTTPConnection] = []  # the kept-alive connection, if any
        self._sent_auth: AuthHeader | None = None
        self._deadline = _Deadline()
        self._lock = threading.Lock()
        # A sink dropped without close() still lets go of its socket and thread.
        self._release = weakref.finalize(self, _release, self._held, self._deadline)
        if auth is not None and parts.scheme == "http" and not _loopback(parts.hostname):
            log.warning("the webhook's auth header goes over plain http to %s", parts.hostname)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        with self._lock:
            for done, event in enumerate(events):
                headers, body = self._message(event, done)
                status, location, answer = self._post(body, headers, done)
                if not 200 <= status < 300:
                    moved = f" (redirect to {location}, not followed)" if location else ""
                    raise PublishFailed(f"webhook answered {status}{moved}{answer}", done)

    def _message(self, event: DomainEvent, done: int) -> tuple[dict[str, str], bytes]:
        if self.mode == "binary":
            headers, body = binary_headers(event), event.data_json
        elif self.mode == "structured":
            headers, body = {"Content-Type": STRUCTURED}, event.to_structured_json()
        else:  # eventarc: projects.locations.messageBuses.publish
            headers = {"Content-Type": "application/json"}
            body = json.dumps({"jsonMessage": event.to_structured_json().decode()}).encode()
        if self.auth is not None:
            try:
                auth = self.auth if isinstance(self.auth, AuthHeader) else self.auth.header()
            except (OSError, ValueError) as exc:  # the messages name no secret
                raise PublishFailed(f"webhook auth unavailable: {_reason(exc)}", done) from None
            headers[auth.name] = auth.value
            self._sent_auth = auth
        return headers, body

    def _post(self, body: bytes, headers: dict[str, str], done: int) -> tuple[int, str, str]:
        """(status, redirect location, a short safe excerpt of a failure's answer)."""
        started = time.monotonic()
        for attempt in (1, 2):
            reused = bool(self._held)
            try:
                conn = self._connection(self.timeout - (time.monotonic() - started))
            except OSError as exc:
                raise PublishFailed(f"webhook unreachable: {_reason(exc)}", done) from None
            assert conn.sock is not None
            self._deadline.arm(conn.sock, self.timeout - (time.monotonic() - started))
            try:
                conn.request("POST", self._target, body, headers)
                response = conn.getresponse()
                answer = response.read(MAX_ANSWER + 1)
            except (OSError, http.client.HTTPException) as exc:
                fired = self._deadline.disarm()
                self._drop()
                if fired or isinstance(exc, TimeoutError):
                    raise PublishFailed(
                        f"webhook gave no answer within {self.timeout:g} s", done
                    ) from None
                if isinstance(exc, http.client.IncompleteRead):  # a chunked body cut off
                    raise PublishFailed(
                        "webhook's answer was cut off: the connection closed within the body",
                        done,
                    ) from None
                stale = isinstance(exc, (http.client.RemoteDisconnected, ConnectionError))
                if reused and stale and attempt == 1:
                    continue  # the server had closed our idle connection: one new try
                raise PublishFailed(f"webhook unreachable: {_reason(exc)}", done) from None
            if self._deadline.disarm():  # a truncated answer can parse as a 200: not one
                self._drop()
                raise PublishFailed(f"webhook gave no answer within {self.timeout:g} s", done)
            if cut := _cut_off(response, answer):  # a 200 that ends early is not delivery
                self._drop()
                raise PublishFailed(f"webhook's {response.status} answer was cut off: {cut}", done)
            if response.will_close or len(answer) > MAX_ANSWER:
                self._drop()
            ok = 200 <= response.status < 300
            location = _printable(response.getheader("location") or "")[:200] if not ok else ""
            return response.status, location, "" if ok else self._excerpt(answer)
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, budget: float) -> http.client.HTTPConnection:
        if not self._held:
            host, port = self._parts.hostname or "", self._parts.port
            timeout = max(0.001, budget)
            if self._parts.scheme == "https":
                context = ssl.create_default_context()
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=context
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.response_class = _Response
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._held.append(conn)
        return self._held[0]

    def _excerpt(self, answer: bytes) -> str:
        """Up to 200 printable characters of a failure's body, the auth value blanked out
        (a receiver may echo the request): Event Grid and Knative say there what was wrong.
        The blanking runs over all that was read, before the cut to 200; a secret's first
        characters where the text is cut (at 200, or where reading stopped) go too."""
        secrets: list[str] = []
        if self._sent_auth is not None:
            value = self._sent_auth.value
            secrets = [_visible(s) for s in (value, value.partition(" ")[2]) if len(s) >= 4]
        text = _redacted(_visible(answer.decode("utf-8", "replace")), secrets)
        if len(answer) > MAX_ANSWER:
            text = _cut_secret_blanked(text, secrets)
        text = text.strip()
        if len(text) > 200:
            text = _cut_secret_blanked(text[:200], secrets)
        return f": {text}" if text else ""

    def _drop(self) -> None:
        while self._held:
            self._held.pop().close()

    def close(self) -> None:
        with self._lock:
            self._release()

    def __repr__(self) -> str:
        auth = "" if self.auth is None else f", auth={self.auth!r}"
        return f"WebhookSink({self.url!r}, mode={self.mode!r}{auth})"


def _release(held: list[http.client.HTTPConnection], deadline: _Deadline) -> None:
    while held:
        held.pop().close()
    deadline.close()


def _visible(text: str) -> str:
    """Every character but printable ASCII a space, one for one."""
    return "".join(c if " " <= c <= "~" else " " for c in text)


def without_userinfo(url: str) -> str:
    """``url`` fit to quote in an error: everything before its last ``@`` (but a leading
    ``scheme:/`` or ``scheme://``) becomes ``***``, so no password shows, however malformed
    the URL (a scheme typo, no ``//``, an unescaped ``/`` in the password). An ``@`` in the
    path or query blanks more than userinfo: only a refused URL is quoted."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://?", head)
    return (scheme.group() if scheme else "") + "***@" + tail


def _printable(text: str) -> str:
    return _visible(text).strip()


def _redacted(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:  # "Bearer <token>" before "<token>"
        text = text.replace(secret, "***")
    return text


def _cut_secret_blanked(text: str, secrets: Sequence[str]) -> str:
    """``text`` was cut short: the first 4 or more characters of a secret at its end, what
    was left of a secret the cut went through, become ``***``."""
    cut = len(text)
    for secret in secrets:
        at = text.find(secret[:4], max(0, len(text) - len(secret)))
        while at != -1 and not secret.startswith(text[at:]):
            at = text.find(secret[:4], at + 1)
        if at != -1:
            cut = min(cut, at)
    return text if cut == len(text) else text[:cut] + "***"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
