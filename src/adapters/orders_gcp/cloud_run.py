"""The Cloud Run container's composition root: configuration from the environment in, the
ASGI app out. Cloud Run needs no framework, only a server for the app::

    uvicorn orders_gcp.cloud_run:factory --factory --host 0.0.0.0 --port $PORT

What it builds: the Firestore backend (:func:`orders_gcp.firestore.backend`), the service,
the core's HTTP API and ASGI app (its lanes wake the relay after each commit), the outbox
relay publishing to the events topic, and the push endpoint in front. The relay starts with
the app's lifespan and makes its final pass at shutdown (Cloud Run sends SIGTERM and waits up
to 10 s); it needs CPU outside requests (``run.googleapis.com/cpu-throttling: "false"``, as
deploy/gcp sets). Logs are Cloud Logging's JSON shape unless ``ORDERS_LOG_FORMAT=json``.

=================================  ===========================================================
variable                           meaning
=================================  ===========================================================
ORDERS_GCP_PROJECT                 the project (default GOOGLE_CLOUD_PROJECT)
ORDERS_GCP_DATABASE                the Firestore database (default ``(default)``)
ORDERS_GCP_EVENTS_TOPIC            where events go (name or full path); unset: no relay
ORDERS_GCP_DEAD_LETTER_TOPIC       where poison commands go; unset: left to the subscription
ORDERS_GCP_PUSH_AUDIENCE           the push subscription's OIDC audience
ORDERS_GCP_PUSH_SERVICE_ACCOUNTS   the push service account(s), comma-separated
ORDERS_GCP_PUSH_VERIFY             ``platform`` (Cloud Run IAM verified the token: check its
                                   claims) or ``token`` (verify it here; default)
ORDERS_GCP_INSECURE_NO_AUTH        ``1``: no authentication at all (the emulators, loopback)
ORDERS_GCP_RELAY_POLL              seconds between the relay's idle looks (default 5)
ORDERS_JWT_ISSUER, ..._AUDIENCE,   HTTP callers' bearer JWTs (orders_local.bearer); with
ORDERS_JWKS_URL, ORDERS_ADMIN_     ``https://accounts.google.com`` as issuer, Google ID tokens
SCOPE                              (their keys' URL is filled in)
ORDERS_LOCAL_HANDLER_TIMEOUT,      as for ``orders-local serve``
ORDERS_LOCAL_MAX_BODY,
ORDERS_LOCAL_THREADS
=================================  ===========================================================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orders_core.application import (
    Authenticator,
    Backend,
    EventPublisher,
    OrderService,
    OutboxRelay,
)
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.edges.lanes import lanes_for
from orders_gcp.push_app import PushApp
from orders_gcp.push_auth import (
    GOOGLE_ISSUER,
    GOOGLE_JWKS_URL,
    PlatformVerifiedPush,
    PushAuthConfig,
    PushAuthenticator,
)
from orders_gcp.push_endpoint import PushEndpoint

if TYPE_CHECKING:
    from orders_local.bearer import BearerConfig

log = logging.getLogger("orders_gcp")


@dataclass(frozen=True)
class GcpConfig:
    """Everything :func:`build` needs; :meth:`from_env` reads the variables above."""

    project: str = ""
    database: str = "(default)"
    events_topic: str = ""
    dead_letter_topic: str = ""
    push: PushAuthConfig | None = None
    push_verify: str = "token"
    jwt: BearerConfig | None = None
    insecure_no_auth: bool = False
    handler_timeout: float = 10.0
    max_body: int = 64 * 1024
    threads: int = 32
    relay_poll: float = 5.0
    """Seconds between the relay's looks at the outbox when no commit woke it. A commit in
    this instance wakes it at once; the poll finds what other instances committed. Each
    look is a query, billed at least one read: at 0.25 s (the local default) an idle
    service would read ~350,000 times a day, seven times Firestore's free daily quota."""

    def __post_init__(self) -> None:
        if self.push_verify not in ("token", "platform"):
            raise ValueError("ORDERS_GCP_PUSH_VERIFY must be token or platform")
        if not self.insecure_no_auth and (self.push is None or self.jwt is None):
            raise ValueError(
                "set ORDERS_GCP_PUSH_AUDIENCE and ORDERS_GCP_PUSH_SERVICE_ACCOUNTS (push "
                "requests) and ORDERS_JWT_ISSUER and ORDERS_JWT_AUDIENCE (HTTP callers), or "
                "ORDERS_GCP_INSECURE_NO_AUTH=1 to run with no authentication at all"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GcpConfig:
        from orders_local.bearer import BearerConfig

        project = env.get("ORDERS_GCP_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT", "")
        push = None
        if env.get("ORDERS_GCP_PUSH_AUDIENCE") or env.get("ORDERS_GCP_PUSH_SERVICE_ACCOUNTS"):
            push = PushAuthConfig.parse(
                audience=env.get("ORDERS_GCP_PUSH_AUDIENCE", ""),
                service_accounts=env.get("ORDERS_GCP_PUSH_SERVICE_ACCOUNTS", ""),
            )
        jwt = None
        if issuer := env.get("ORDERS_JWT_ISSUER", "").strip():
            jwks_url = env.get("ORDERS_JWKS_URL", "")
            if not jwks_url and issuer.rstrip("/") == GOOGLE_ISSUER:
                jwks_url = GOOGLE_JWKS_URL  # Google's keys are not under the issuer's URL
            jwt = BearerConfig.parse(
                issuer=issuer,
                audience=env.get("ORDERS_JWT_AUDIENCE", ""),
                jwks_url=jwks_url,
                algorithms=env.get("ORDERS_JWT_ALGORITHMS", "RS256,ES256"),
                admin_scope=env.get("ORDERS_ADMIN_SCOPE", ""),
            )
        return cls(
            project=project,
            database=env.get("ORDERS_GCP_DATABASE", "(default)"),
            events_topic=env.get("ORDERS_GCP_EVENTS_TOPIC", ""),
            dead_letter_topic=env.get("ORDERS_GCP_DEAD_LETTER_TOPIC", ""),
            push=push,
            push_verify=env.get("ORDERS_GCP_PUSH_VERIFY", "token"),
            jwt=jwt,
            insecure_no_auth=env.get("ORDERS_GCP_INSECURE_NO_AUTH", "") in ("1", "true", "yes"),
            handler_timeout=float(env.get("ORDERS_LOCAL_HANDLER_TIMEOUT", "10")),
            max_body=int(env.get("ORDERS_LOCAL_MAX_BODY", str(64 * 1024))),
            threads=int(env.get("ORDERS_LOCAL_THREADS", "32")),
            relay_poll=float(env.get("ORDERS_GCP_RELAY_POLL", "5")),
        )


def _push_authenticator(config: GcpConfig) -> Authenticator | None:
    if config.push is None:
        return None
    if config.push_verify == "platform":
        return PlatformVerifiedPush(config.push)
    return PushAuthenticator(config.push)


def _warming(fetch: Callable[[], bool]) -> Callable[[], None]:
    def hook() -> None:
        if not fetch():
            log.warning("signing keys not fetched at start; the first request tries again")

    return hook


def build(
    config: GcpConfig,
    *,
    backend: Backend | None = None,
    publisher: EventPublisher | None = None,
) -> PushApp:
    """The app for ``config``; ``backend`` and ``publisher`` replace what it would open
    (tests pass their own)."""
    from orders_gcp.pubsub import DeadLetterTopic, PubSubPublisher, topic_path

    if backend is None:
        from orders_gcp.firestore import backend as firestore_backend

        backend = firestore_backend({"project": config.project, "database": config.database})
    authenticate: Authenticator | None = None
    warm: list[Callable[[], None]] = []  # fetch signing keys before the first request waits
    if config.jwt is not None:
        from orders_local.bearer import JwtAuthenticator

        bearer = JwtAuthenticator(config.jwt)
        authenticate = bearer
        warm.append(_warming(bearer.warm))
    service = OrderService(backend.store)
    if publisher is None and config.events_topic:
        publisher = PubSubPublisher(topic_path(config.events_topic, config.project))
    relay = None
    if publisher is not None and backend.outbox is not None:
        relay = OutboxRelay(
            backend.outbox, publisher, destination="pubsub", poll_interval=config.relay_poll
        )
    push_auth = _push_authenticator(config)
    if isinstance(push_auth, PushAuthenticator):
        warm.append(_warming(push_auth.warm))
    api = HttpApi(
        service, max_body=config.max_body, timeout=config.handler_timeout, authenticate=authenticate
    )

    def stop() -> None:
        if relay is not None:
            left = relay.stop(timeout=config.handler_timeout)
            if left:
                log.warning("%d event(s) not delivered yet; they go out after the next start", left)
        backend.close()

    app = create_app(
        api,
        lanes_for(api, threads=config.threads, on_commit=relay.wake if relay else None),
        on_startup=[*warm, *([relay.start] if relay else [])],
        on_shutdown=[stop],
    )
    dead_letters = None
    if config.dead_letter_topic:
        dead_letters = DeadLetterTopic(topic_path(config.dead_letter_topic, config.project))
    endpoint = PushEndpoint(
        service,
        authenticate=push_auth,
        dead_letters=dead_letters,
        timeout=config.handler_timeout,
        insecure_no_auth=config.insecure_no_auth,
    )
    if config.insecure_no_auth:
        log.warning("authentication is OFF: anyone who reaches this service acts on every order")
    return PushApp(app, endpoint, threads=config.threads)


def factory() -> PushApp:
    """A fresh app configured from the environment (uvicorn's ``--factory``)."""
    if os.environ.get("ORDERS_LOG_FORMAT", "cloud-logging") == "cloud-logging":
        from orders_gcp.cloud_logging import configure_logging

        configure_logging()
    else:
        from orders_local.runtime import configure_logging as json_logging

        json_logging()
    return build(GcpConfig.from_env())


def main() -> None:  # pragma: no cover - the container's entrypoint
    """``python -m orders_gcp.cloud_run``: uvicorn on ``$PORT`` (Cloud Run sets it) on all
    interfaces, one worker (scale out with instances), Cloud Run's keep-alive in mind."""
    import uvicorn

    uvicorn.run(
        "orders_gcp.cloud_run:factory",
        factory=True,
        host="0.0.0.0",  # noqa: S104 - a container's port; Cloud Run's front end is the edge
        port=int(os.environ.get("PORT", "8080")),
        log_config=None,  # our handler (Cloud Logging's shape) is installed by factory()
        access_log=False,  # the app writes its own access line
        timeout_graceful_shutdown=8,  # Cloud Run gives 10 s after SIGTERM
        proxy_headers=True,
        forwarded_allow_ips="*",  # Cloud Run's front end is the only peer
    )


if __name__ == "__main__":  # pragma: no cover
    main()
