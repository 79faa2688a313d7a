"""Building a console over a store, and calling it the way a browser on loopback would."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from orders_core.application import (
    Backend,
    OrderService,
    OrderStore,
    Principal,
)
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse
from orders_core.errors import Unauthenticated
from orders_local.console import CSRF_COOKIE, CSRF_HEADER, Console

ALICE = Principal.jwt("https://issuer.test/", "alice")
BOB = Principal.jwt("https://issuer.test/", "bob")
ADMIN = Principal.jwt("https://issuer.test/", "root", admin=True)
TOKENS = {"Bearer alice": ALICE, "Bearer bob": BOB, "Bearer admin": ADMIN}
HOST = "127.0.0.1:8080"
API = "/console/api/v1"
SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'


def bearer(headers: Mapping[str, str]) -> Principal:
    """A stand-in for JWT verification: three known tokens, anything else is refused."""
    principal = TOKENS.get(headers.get("authorization", ""))
    if principal is None:
        raise Unauthenticated("a known bearer token is required")
    return principal


def console_api(
    store: OrderStore,
    *,
    authenticated: bool = False,
    retry_now: Callable[[], None] | None = None,
    traces_ui_url: str | None = None,
    name: str = "sqlite",
    declare: bool = True,
) -> HttpApi:
    """An HttpApi with the console mounted, as LocalRuntime builds it; ``declare=False``:
    a backend that declares neither console port (as DynamoDB)."""
    if declare:
        backend = Backend(name, store, name, browser=store, inspector=store)
    else:
        backend = Backend(name, store, name, events="the table's stream")
    service = OrderService(store)
    console = Console(
        service,
        backend,
        authenticated=authenticated,
        retry_now=retry_now,
        traces_ui_url=traces_ui_url,
    )
    return HttpApi(
        service, authenticate=bearer if authenticated else None, extra_routes=console.routes()
    )


def call(
    api: HttpApi,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    peer: str | None = "127.0.0.1",
) -> HttpResponse:
    """A request as the ASGI app hands it over: lower-case headers, the peer address."""
    hdrs = {"host": HOST, **{k.lower(): v for k, v in (headers or {}).items()}}
    if body:
        hdrs.setdefault("content-type", "application/json")
    return api.handle(HttpRequest(method, path, hdrs, dict(query or {}), body, peer=peer))


def csrf_token(page: HttpResponse) -> str:
    found = re.match(rf"{CSRF_COOKIE}=([0-9a-f]{{64}});", page.headers["set-cookie"])
    assert found is not None, page.headers
    return found.group(1)


def page_headers(api: HttpApi, **extra: str) -> dict[str, str]:
    """What the console page's script sends with its POST: the cookie and its echo."""
    token = csrf_token(call(api, "GET", "/console", headers=extra))
    return {
        "cookie": f"{CSRF_COOKIE}={token}",
        CSRF_HEADER: token,
        "origin": f"http://{HOST}",
        "sec-fetch-site": "same-origin",
        **extra,
    }
