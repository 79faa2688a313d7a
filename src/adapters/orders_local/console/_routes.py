"""The console's routes: its page and assets, and the versioned JSON read API it polls.

    GET  /console                                       the page (HTML; sets the CSRF cookie)
    GET  /console/assets/{name}                         its CSS and JavaScript
    GET  /console/api/v1/overview                       counts by status, the outbox's state
    GET  /console/api/v1/orders?status=&customerId=&limit=&cursor=   newest first
    GET  /console/api/v1/orders/{orderId}               the order and its timeline
    GET  /console/api/v1/outbox?state=undelivered|failed&after=&limit=
    POST /console/api/v1/outbox/{eventId}/redeliver     ask the relay to retry a failed event

Every route runs through :class:`~orders_core.edges.http.HttpApi` (authentication, problem
details, the lanes' read pool and writer) and checks :func:`check_access` first. Answers
carry a strict Content-Security-Policy and ``Cache-Control: no-store``; JSON answers an
ETag, so a poll that finds nothing new costs a 304 and no body.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from importlib import resources
from typing import Final

from orders_core.application import (
    ID_PATTERN,
    MAX_PAGE_SIZE,
    Backend,
    Clock,
    OrderService,
    utc_now,
)
from orders_core.domain import OrderStatus
from orders_core.edges.http import Call, Endpoint, HttpRequest, HttpResponse, Route
from orders_core.edges.numbers import ascii_int
from orders_core.errors import MalformedRequest, NotFound
from orders_local.console import _docs
from orders_local.console._access import check_access, check_csrf, csrf_cookie, new_csrf_token
from orders_local.console._views import (
    SCHEMAS,
    Capabilities,
    EventDelivery,
    OrderDetail,
    OrderList,
    OrderRow,
    OutboxList,
    OutboxState,
    Overview,
    Redelivery,
    TimelineItem,
    render,
)

API: Final = "/console/api/v1"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}
ASSETS: Final = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
STATUSES: Final = frozenset(s.value for s in OrderStatus)
_ID: Final = re.compile(ID_PATTERN)
_EVENT_ID: Final = re.compile(_docs.EVENT_ID_PATTERN)

View = Callable[[HttpRequest, dict[str, str]], HttpResponse]


def check_trace_template(template: str) -> str:
    """A tracing UI's URL template: http(s), with ``{traceId}`` where the id goes."""
    if not template.startswith(("http://", "https://")) or "{traceId}" not in template:
        raise ValueError(
            f"--traces-ui-url must be an http(s) URL containing {{traceId}}, not {template!r}"
        )
    return template


def _asset(name: str) -> bytes:
    return resources.files("orders_local.console").joinpath("static", name).read_bytes()


def _token(value: str | None, what: str, pattern: re.Pattern[str] = _ID) -> str | None:
    """An id as the API spells ids (``customerId``, ``orderId``), or None if absent."""
    if value is None:
        return None
    if not pattern.fullmatch(value):
        raise MalformedRequest(f"{what} is not an id: 1-64 letters, digits, '-' or '_'")
    return value


def _bounded(value: str | None, what: str, default: int, low: int, high: int) -> int:
    number = default if value is None else ascii_int(value)
    if number is None or not low <= number <= high:
        raise MalformedRequest(f"{what} must be an integer from {low} to {high}")
    return number


class Console:
    """The console over one runtime's service and backend; :meth:`routes` mounts it."""

    def __init__(
        self,
        service: OrderService,
        backend: Backend,
        *,
        authenticated: bool,
        retry_now: Callable[[], None] | None = None,
        traces_ui_url: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.service = service
        self.backend = backend
        self.authenticated = authenticated
        """Whether the runtime verifies credentials: then admins only, else loopback only."""
        self.retry_now = retry_now
        """The relay's ``retry_now`` (None: no relay runs here)."""
        self.trace_url = check_trace_template(traces_ui_url) if traces_ui_url else None
        self.clock = clock
        self._page: bytes | None = None

    def routes(self) -> tuple[Route, ...]:
        """The console's routes, for ``HttpApi(extra_routes=)``."""

        def route(method: str, template: str, name: str, endpoint: View) -> Route:
            return Route(
                method,
                template,
                name,
                self._guarded(endpoint),
                openapi=_docs.OPERATIONS[name],
                schemas=SCHEMAS if name == "consoleOverview" else (),
            )

        return (
            route("GET", "/console", "consolePage", self._index),
            route("GET", "/console/assets/{name}", "consoleAsset", self._static),
            route("GET", f"{API}/overview", "consoleOverview", self._overview),
            route("GET", f"{API}/orders", "consoleOrders", self._orders),
            route("GET", f"{API}/orders/{{orderId}}", "consoleOrder", self._order),
            route("GET", f"{API}/outbox", "consoleOutbox", self._outbox),
            route("POST", f"{API}/outbox/{{eventId}}/redeliver", "consoleRedeliver", self._redo),
        )

    def _guarded(self, endpoint: View) -> Endpoint:
        def guarded(
            api: object, request: HttpRequest, params: dict[str, str], call: Call
        ) -> HttpResponse:
            check_access(request, authenticated=self.authenticated)
            return endpoint(request, params)

        return guarded

    # -- the page ----------------------------------------------------------------------

    def _index(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        if self._page is None:
            self._page = _asset("index.html")
        headers = {
            **SECURITY_HEADERS,
            "content-type": "text/html; charset=utf-8",
            "set-cookie": csrf_cookie(new_csrf_token()),
        }
        return HttpResponse(200, headers, self._page)

    def _static(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        name = params["name"]
        if name not in ASSETS:  # a fixed list: no path ever reaches the file system
            raise NotFound(f"no console asset {name!r}")
        return HttpResponse(200, {**SECURITY_HEADERS, "content-type": ASSETS[name]}, _asset(name))

    # -- the read API ------------------------------------------------------------------

    def _json(self, request: HttpRequest, body: bytes, status: int = 200) -> HttpResponse:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {**SECURITY_HEADERS, "content-type": "application/json", "etag": etag}
        if status == 200 and request.header("if-none-match") == etag:
            return HttpResponse(304, headers, b"")
        return HttpResponse(status, headers, body)

    def _capabilities(self) -> Capabilities:
        backend = self.backend
        return Capabilities(
            orders=backend.browser is not None,
            timeline=backend.inspector is not None,
            outbox=backend.inspector is not None,
            events=backend.events,
        )

    def _overview(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        customer = _token(request.query.get("customerId"), "customerId")
        browser, inspector = self.backend.browser, self.backend.inspector
        view = Overview(
            store=self.backend.name,
            capabilities=self._capabilities(),
            counts=browser.status_counts(customer_id=customer) if browser else None,
            outbox=OutboxState.of(inspector.summary(), self.clock()) if inspector else None,
            traces_linked=self.trace_url is not None,
        )
        return self._json(request, render(view))

    def _orders(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        query = request.query
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise MalformedRequest(f"status must be one of {', '.join(sorted(STATUSES))}")
        customer = _token(query.get("customerId") or None, "customerId")
        limit = _bounded(query.get("limit"), "limit", 20, 1, MAX_PAGE_SIZE)
        if self.backend.browser is None:
            raise NotFound(
                f"the {self.backend.name} store cannot list every order; open one by its id"
            )
        page = self.backend.browser.browse(
            status=status,
            customer_id=customer,
            limit=limit,
            cursor=query.get("cursor") or None,  # the store checks its signature and size
        )
        view = OrderList(orders=[OrderRow.of(o) for o in page.orders], next_cursor=page.next_cursor)
        return self._json(request, render(view))

    def _order(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        order_id = _token(params["orderId"], "orderId")
        assert order_id is not None
        order = self.service.get(order_id, principal=request.principal)
        inspector = self.backend.inspector
        timeline = None
        if inspector is not None:
            timeline = [TimelineItem.of(e, self.trace_url) for e in inspector.timeline(order_id)]
        return self._json(request, render(OrderDetail(order=order, timeline=timeline)))

    def _outbox(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        query = request.query
        state = query.get("state", "undelivered")
        if state not in ("undelivered", "failed"):
            raise MalformedRequest("state must be undelivered or failed")
        after = _bounded(query.get("after"), "after", 0, 0, 2**62)
        limit = _bounded(query.get("limit"), "limit", 50, 1, MAX_PAGE_SIZE)
        inspector = self.backend.inspector
        if inspector is None:
            where = self.backend.events or "no outbox"
            raise NotFound(f"the {self.backend.name} store keeps no outbox ({where})")
        found = inspector.undelivered(failed_only=state == "failed", after=after, limit=limit + 1)
        view = OutboxList(
            outbox=OutboxState.of(inspector.summary(), self.clock()),
            events=[EventDelivery.of(d, self.trace_url) for d in found[:limit]],
            next_after=found[limit - 1].position if len(found) > limit else None,
        )
        return self._json(request, render(view))

    def _redo(self, request: HttpRequest, params: dict[str, str]) -> HttpResponse:
        check_csrf(request)
        event_id = _token(params["eventId"], "eventId", _EVENT_ID)
        assert event_id is not None
        inspector = self.backend.inspector
        if inspector is None:
            raise NotFound(f"the {self.backend.name} store keeps no outbox")
        asked = inspector.request_redelivery(
            event_id, requested_by=request.principal.kind, now=self.clock()
        )
        if self.retry_now is not None:
            self.retry_now()  # the relay ends its pause; the request is recorded either way
        view = Redelivery(
            request_id=asked.request_id,
            event_id=asked.event_id,
            requested_at=asked.requested_at,
            requested_by=asked.requested_by,
            created=asked.created,
        )
        return self._json(request, render(view), 202 if asked.created else 200)
