"""Who may use the console, and which POSTs are the page's own (CSRF).

Access, on every console route:

- authentication on: only a principal holding the admin scope (401 without credentials,
  as for the API; 403 without the scope);
- authentication off: only a caller connected from a loopback address, as the server saw
  the connection (the ASGI scope's ``client``, never a header), and only under a loopback
  ``Host`` name, so a web page whose DNS name re-binds to 127.0.0.1 cannot read it.

A state-changing POST must also be the console page's own (docs/decisions/
0019-console-history-and-redelivery.md): ``Sec-Fetch-Site`` (when the browser sends it) must say
``same-origin``, ``Origin`` (when sent) must be this server's, and the ``X-Console-CSRF``
header must repeat the ``orders-console-csrf`` cookie the page was served with
(double submit; the cookie is ``SameSite=Strict``). A cross-site form can set neither the
header nor read the cookie, and a cross-site ``fetch`` with that header needs a CORS
preflight this server never grants.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from typing import Final

from orders_core.edges.http import HttpRequest
from orders_core.errors import Forbidden

CSRF_COOKIE: Final = "orders-console-csrf"
CSRF_HEADER: Final = "x-console-csrf"
_COOKIE_RE: Final = re.compile(rf"(?:^|;\s*){re.escape(CSRF_COOKIE)}=([0-9a-f]{{64}})(?:;|$)")
_HOST_RE: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$")


def is_loopback_peer(peer: str | None) -> bool:
    """Whether the connection came from this machine (an IPv4-mapped IPv6 127/8 too)."""
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost`` (or a name under it) or a
    loopback address, with any port."""
    match = _HOST_RE.match(host or "")
    if match is None:
        return False
    name = match.group(1).lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    return is_loopback_peer(name.strip("[]"))


def check_access(request: HttpRequest, *, authenticated: bool) -> None:
    """Raise :class:`Forbidden` unless ``request`` may use the console."""
    if authenticated:
        if not request.principal.admin:
            raise Forbidden("the console needs the admin scope")
        return
    if not is_loopback_peer(request.peer):
        raise Forbidden(
            "with authentication off the console answers loopback callers only; "
            "turn authentication on (--jwt-issuer) to use it from elsewhere"
        )
    if not is_loopback_host(request.header("host")):
        raise Forbidden("the console answers loopback host names only (localhost, 127.0.0.1)")


def new_csrf_token() -> str:
    return secrets.token_hex(32)


def csrf_cookie(token: str) -> str:
    """The ``Set-Cookie`` value for the page: readable by its script (which sends it back as
    a header), sent only by same-site requests, to console paths only."""
    return f"{CSRF_COOKIE}={token}; Path=/console; SameSite=Strict"


def check_csrf(request: HttpRequest) -> None:
    """Raise :class:`Forbidden` unless the POST comes from the console page itself."""
    site = request.header("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise Forbidden(f"a {site} request cannot change anything here")
    origin = request.header("origin")
    host = request.header("host") or ""
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        raise Forbidden("the request's Origin is not this server")
    found = _COOKIE_RE.search(request.header("cookie") or "")
    sent = request.header(CSRF_HEADER) or ""
    if found is None or not hmac.compare_digest(
        found.group(1).encode(), sent.encode("latin-1", "replace")
    ):
        raise Forbidden(
            f"send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER} (reload the console)"
        )
