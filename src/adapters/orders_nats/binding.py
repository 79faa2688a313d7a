"""The CloudEvents NATS protocol binding (version 1.0.3-wip), for JetStream publishing.

*Binary* content mode (the default): every context attribute travels in a header of its own,
``ce-<name>``, its value percent-encoded as section 3.1.3.2 says (space, ``"``, ``%`` and
all but printable ASCII), and the body is the event's data. Unlike HTTP, ``datacontenttype``
maps to ``ce-datacontenttype`` like any attribute: on NATS a ``Content-Type`` starting with
``application/cloudevents`` is what marks *structured* mode, whose body is the JSON event
format. Either way the message carries ``Nats-Msg-Id: <event id>``, on which JetStream drops
a second copy within the stream's duplicate window, so a relay's retry is stored once.

The subject comes from a template (:class:`SubjectTemplate`); ``{type}`` becomes the event
type's dot-separated tokens, so ``orders.events.>`` selects every event and
``orders.events.*.*.order.created.*`` one type, in any version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import quote

from orders_core.domain import DomainEvent

MSG_ID: Final = "Nats-Msg-Id"
EXPECTED_STREAM: Final = "Nats-Expected-Stream"
STRUCTURED: Final = "application/cloudevents+json; charset=utf-8"
MODES: Final = ("binary", "structured")
MAX_SUBJECT: Final = 256
"""Bytes of a rendered subject. nats-server closes a connection whose control line (PUB,
subject, reply inbox, sizes) passes 4 KiB: one hostile event type must not do that."""

# Printable ASCII less space, double quote and percent: left as they are (3.1.3.2).
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')
_TOKEN: Final = re.compile(r"[A-Za-z0-9_\-:$]+")
"""What a subject token may hold here: NATS allows more, but these survive every client and
tool, and no wildcard (``*``, ``>``) or whitespace can slip in."""
_FIELDS: Final = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS: Final = ("type", "subject")


class Unpublishable(ValueError):
    """This event cannot become a NATS message (its subject or id would be invalid): no retry
    will change that."""


class TooLarge(Unpublishable):
    """The message, headers included, is over the server's ``max_payload``."""


def encode_value(text: str) -> str:
    """A header value as the binding writes it (upper-case hex, UTF-8 bytes)."""
    try:
        return quote(text, safe=_SAFE)
    except UnicodeEncodeError:  # a lone surrogate: not a Unicode string the spec can carry
        raise Unpublishable("an attribute holds a lone surrogate") from None


def _canonical(value: object) -> str:
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return str(value)


def message_id(event: DomainEvent) -> str:
    """``Nats-Msg-Id``: the event id itself (ours are ``<orderId>.v<version>``), so the id a
    consumer deduplicates on and the one JetStream does are the same."""
    if not event.id or len(event.id) > 256 or not event.id.isascii() or not event.id.isprintable():
        raise Unpublishable("the event id is not printable ASCII of 1-256 characters")
    if " " in event.id:
        raise Unpublishable("the event id contains a space")
    return event.id


def headers_and_body(event: DomainEvent, mode: str) -> tuple[dict[str, str], bytes]:
    """The message's headers and payload for ``mode`` (``binary`` or ``structured``)."""
    headers = {MSG_ID: message_id(event)}
    if mode == "structured":
        headers["Content-Type"] = STRUCTURED
        return headers, event.to_structured_json()
    for name, value in event.attributes().items():
        headers[f"ce-{name}"] = encode_value(_canonical(value))
    return headers, event.data_json


@dataclass(frozen=True)
class SubjectTemplate:
    """Where an event goes: dot-separated tokens, ``{type}`` and ``{subject}`` filled in.

    ``{type}`` expands to the CloudEvent type's tokens (``io.orderscore.order.created.v1``),
    ``{subject}`` to the CloudEvent subject (the order id) as one token. Checked when
    configured; a value that would break the subject raises :class:`Unpublishable` then.
    """

    template: str = "orders.events.{type}"

    def __post_init__(self) -> None:
        for field in _FIELDS.findall(self.template):
            if field not in PLACEHOLDERS:
                raise ValueError(
                    f"NATS subject {self.template!r}: unknown placeholder {{{field}}}; "
                    "use {type} or {subject}"
                )
        try:
            self._check(self.template.format(type="t", subject="s"))
        except (Unpublishable, ValueError, IndexError, KeyError):
            raise ValueError(
                f"NATS subject {self.template!r} is not a subject: dot-separated tokens of "
                "letters, digits, - _ : $, no wildcards (* >), at most "
                f"{MAX_SUBJECT} bytes"
            ) from None

    def render(self, event: DomainEvent) -> str:
        if "." in event.subject:
            raise Unpublishable("the CloudEvent subject has a dot: it would split a token")
        return self._check(self.template.format(type=event.type, subject=event.subject))

    @staticmethod
    def _check(subject: str) -> str:
        if len(subject) > MAX_SUBJECT:
            raise Unpublishable(f"the subject is over {MAX_SUBJECT} bytes")
        if not all(_TOKEN.fullmatch(token) for token in subject.split(".")):
            raise Unpublishable("the subject would hold an empty or invalid token")
        return subject
