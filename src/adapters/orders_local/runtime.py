"""The local runtime's composition root: config in, a running server + relay out."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orders_core import telemetry
from orders_core.application import (
    Authenticator,
    Backend,
    EventPublisher,
    OrderBrowser,
    OrderService,
    OrderStore,
    Outbox,
    OutboxInspector,
    OutboxRelay,
    Relay,
)
from orders_core.edges.asgi import OrdersAsgi, create_app
from orders_core.edges.http import HttpApi, Route
from orders_core.edges.lanes import lanes_for
from orders_core.telemetry import JsonLogFormatter
from orders_local.relay_process import RelayProcess
from orders_local.sinks import check_sink_spec, sink_from_spec

if TYPE_CHECKING:
    from orders_local.bearer import BearerConfig
    from orders_local.uvicorn_server import UvicornServer

log = logging.getLogger("orders_local")


@dataclass(frozen=True)
class LocalConfig:
    """Every setting of ``orders-local serve``; each has an ORDERS_LOCAL_* variable too."""

    db: Path = Path("orders.db")
    host: str = "127.0.0.1"
    port: int = 8080
    sink: str = "stdout"
    max_body: int = 64 * 1024
    """The largest valid order (100 items) takes a few KB; bigger bodies invite CPU abuse."""
    read_timeout: float = 5.0
    handler_timeout: float = 10.0
    allow_remote: bool = False
    synchronous: str = "NORMAL"
    """SQLite ``synchronous``: NORMAL may lose the last commits to a power loss, FULL not."""
    relay: str = "process"
    """Where the outbox relay runs for a SQLite file and a ``sink``: ``process`` (its own,
    beside the server's; docs/decisions/0009) or ``thread`` (in the server's process).
    A ``publisher`` object passed to the runtime always runs in a thread."""
    server: str = "uvicorn"
    """The HTTP front end: ``uvicorn`` (the ASGI app on uvicorn[standard], in a thread of
    this process; decision 0014) or ``external`` (only the app: someone else's server runs
    it and its lifespan starts and stops the runtime; ``orders_local.asgi_app``)."""
    threads: int = 32
    """Threads for a networked store's requests (each in its own unit of work); the
    DynamoDB client's connection pool is sized alike."""
    max_connections: int = 1024
    """Concurrent connections (and requests) before new requests get 503."""
    jwt: BearerConfig | None = None
    """Verify bearer JWTs (orders_local.bearer); None: authentication off, every caller is
    the one anonymous principal (loopback development)."""
    relay_backoff_base: float = 0.1
    """Seconds the relay pauses after a first failed delivery; each next pause doubles."""
    relay_backoff_cap: float = 10.0
    """The longest pause between attempts (the console's redeliver ends one at once)."""
    console: bool = True
    """Serve the browser console at /console (orders_local.console): admins only with
    authentication on, loopback peers only with it off."""
    traces_ui_url: str | None = None
    """A URL template with ``{traceId}`` (Jaeger: ``http://localhost:16686/trace/{traceId}``):
    the console links each trace id to it."""


def _report(undelivered: int) -> None:
    if undelivered:
        log.warning("%d event(s) not delivered yet; they will be after the next start", undelivered)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr (stdout carries the stdout sink's events)."""
    telemetry.lean_log_records()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class LocalRuntime:
    """A store, the service, the HTTP server and the relay, started and stopped together."""

    def __init__(
        self,
        config: LocalConfig,
        *,
        backend: Backend | None = None,
        store: OrderStore | None = None,
        publisher: EventPublisher | None = None,
        authenticate: Authenticator | None = None,
    ) -> None:
        """``backend`` is what the CLI opened by name (``orders_local.backends``); without
        one, ``store`` (any store, for tests) or else the SQLite file ``config.db``.
        ``authenticate`` replaces the one ``config.jwt`` would build (tests pass one with a
        fake clock)."""
        self.config = config
        if authenticate is None and config.jwt is not None:
            from orders_local.bearer import JwtAuthenticator  # PyJWT only when asked for

            authenticate = JwtAuthenticator(config.jwt)
        self.authenticate = authenticate
        if backend is None:
            if store is not None:
                backend = Backend(  # the ports its class declares (ABCs it subclasses)
                    "custom",
                    store,
                    type(store).__name__,
                    outbox=store if isinstance(store, Outbox) else None,
                    browser=store if isinstance(store, OrderBrowser) else None,
                    inspector=store if isinstance(store, OutboxInspector) else None,
                )
            else:
                from orders_local.backends import open_backend

                settings = {"db": str(config.db), "synchronous": config.synchronous}
                backend = open_backend("sqlite", settings)
        self.backend = backend
        self.store = backend.store
        if config.relay not in ("process", "thread"):
            raise ValueError(f"unknown relay {config.relay!r}: use process or thread")
        self.publisher: EventPublisher | None = None
        self._owns_publisher = False
        self.relay: Relay | None = None
        outbox = backend.outbox
        if (
            outbox is not None
            and publisher is None
            and config.relay == "process"
            and (
                backend.file is not None and os.name == "posix"  # the lifeline is a POSIX pipe
            )
        ):
            check_sink_spec(config.sink)
            if config.sink != "none":
                self.relay = RelayProcess(
                    outbox,
                    config.sink,
                    file=backend.file,
                    backoff_base=config.relay_backoff_base,
                    backoff_cap=config.relay_backoff_cap,
                    # the store's own: a backend opened by name may say other than config
                    synchronous=str(getattr(backend.store, "synchronous", config.synchronous)),
                )
        elif outbox is not None:
            self.publisher = publisher if publisher is not None else sink_from_spec(config.sink)
            self._owns_publisher = publisher is None  # built here: closed here
            if self.publisher is not None:
                self.relay = OutboxRelay(
                    outbox,
                    self.publisher,
                    destination=config.sink,
                    backoff_base=config.relay_backoff_base,
                    backoff_cap=config.relay_backoff_cap,
                )
        if outbox is not None and telemetry.sdk_configured():
            telemetry.METRICS.observe_undelivered(outbox.undelivered_count)
        service = OrderService(self.store)
        extra: tuple[Route, ...] = ()
        if config.console:
            from orders_local.console import Console

            relay = self.relay
            extra = Console(
                service,
                backend,
                authenticated=authenticate is not None,
                retry_now=relay.retry_now if relay is not None else None,
                traces_ui_url=config.traces_ui_url,
            ).routes()
        api = HttpApi(
            service,
            max_body=config.max_body,
            timeout=config.handler_timeout,
            authenticate=authenticate,
            extra_routes=extra,
        )
        on_commit = self.relay.wake if self.relay else None
        self.server: UvicornServer | None = None
        self._wait_started: Callable[[], bool] | None = None
        self.app: OrdersAsgi | None = None
        if config.server in ("uvicorn", "external"):
            lanes = lanes_for(api, threads=config.threads, on_commit=on_commit)
            if isinstance(self.relay, RelayProcess):
                lanes.watch(self.relay.marks_fd, self.relay.apply_marks)
            external = config.server == "external"  # someone else's server runs the app
            self.app = create_app(
                api,
                lanes,
                body_timeout=config.read_timeout,
                access_log=logging.getLogger("orders_local.access"),
                on_startup=[self.start] if external else (),
                on_shutdown=[lambda: _report(self.stop(config.handler_timeout))]
                if external
                else (),
            )
            if not external:
                from orders_local.uvicorn_server import UvicornServer

                self.server = UvicornServer(
                    (config.host, config.port),
                    self.app,
                    read_timeout=config.read_timeout,
                    max_connections=config.max_connections,
                )
                self._wait_started = self.server.wait_started
        else:
            raise ValueError(f"unknown server {config.server!r}: use uvicorn or external")
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            return "(the ASGI server's address)"
        return self.server.url

    def start(self) -> None:
        warm = getattr(self.authenticate, "warm", None)
        if warm is not None:  # fetch the signing keys before the first request waits on it
            warm()
        if self.relay is not None:
            if self.backend.watch_commits is not None:
                self.backend.watch_commits(self.relay.wake)
            self.relay.start()
        if self.server is None:  # the app's lifespan called this: the server is running
            return
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="http",
            daemon=True,
        )
        self._thread.start()
        if self._wait_started is not None:
            self._wait_started()

    def stop(self, timeout: float = 10.0) -> int:
        """Stop accepting, finish in-flight requests, flush the relay, close the store.

        Returns how many events stay undelivered (they go out after the next start).
        """
        if self.server is not None:
            self.server.shutdown(timeout)
            self.server.server_close()
        undelivered = 0
        try:
            if self.relay is not None:
                undelivered = self.relay.stop(timeout=timeout)
        finally:  # a relay that fails to stop still leaves the sink and store to close
            try:
                if self.publisher is not None and self._owns_publisher:
                    self.publisher.close()
            finally:
                self.backend.close()
        return undelivered

    def describe(self) -> str:
        data = self.backend.describe
        sink = self.backend.events or self.config.sink
        if self.config.jwt is not None:
            auth = self.config.jwt.describe()
        elif self.authenticate is not None:
            auth = "on"
        elif is_loopback(self.config.host):
            auth = "off (loopback development)"
        else:
            auth = "OFF (anyone who can reach this address acts on every order)"
        return (
            f"orders-local listening on {self.url} "
            f"(data: {data}; sink: {sink}; authentication: {auth})"
        )
