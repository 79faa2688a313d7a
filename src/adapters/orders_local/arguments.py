"""The ``orders-local`` command line: its parser, each option with its ORDERS_LOCAL_*
variable and the checks that make a bad value a usage error rather than a traceback.

A command-line option wins over the environment. The commands themselves are in
:mod:`orders_local.cli`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orders_core.edges.numbers import ascii_decimal, ascii_int
from orders_local.backends import BACKENDS

ENV = "ORDERS_LOCAL_"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV + name, default)


class _FromEnv:
    """An option's default as ``ORDERS_LOCAL_<name>`` gave it, parsed only once the command
    it belongs to is the one being run: a bad ``serve`` variable must not stop ``relay``.
    Not a ``str``, so argparse does not run the option's ``type`` on it (its error would
    name the option, not the variable)."""

    __slots__ = ("parse", "text", "variable")

    def __init__(self, variable: str, text: str, parse: Callable[[str], object]) -> None:
        self.variable = variable
        self.text = text
        self.parse = parse

    def __str__(self) -> str:  # what --help shows as the default
        return self.text


def _env_value(name: str, default: str, parse: Callable[[str], object]) -> Any:
    """An option's default from ``ORDERS_LOCAL_<name>``, parsed after the command line: a
    bad value is then a usage error naming the variable (exit 2), not a traceback."""
    return _FromEnv(ENV + name, _env(name, default), parse)


class _Parser(argparse.ArgumentParser):
    """Parses the defaults that came from the environment (:func:`_env_value`) once the
    command line is in, for the (sub)command being run only."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        store, synchronous = getattr(parsed, "store", None), getattr(parsed, "synchronous", None)
        if isinstance(store, _FromEnv):
            store = store.text
        given = isinstance(synchronous, str) and any(  # by this (sub)parser's command line
            action.dest == "synchronous" for action in self._actions
        )
        if store not in (None, "sqlite") and given:
            # Given on the command line (a variable's value is a _FromEnv, and a variable
            # may be shared with SQLite runs): refused rather than silently ignored.
            self.error(
                f"--synchronous is SQLite's durability; --store {store} keeps its own"
                + (" (the server's synchronous_commit)" if store == "postgres" else "")
            )
        for dest, value in vars(parsed).items():
            if isinstance(value, _FromEnv):
                try:
                    setattr(parsed, dest, value.parse(value.text))
                except argparse.ArgumentTypeError as exc:
                    self.error(f"{value.variable}: {exc}")
        return parsed, extras


def _positive_int(text: str) -> int:
    value = ascii_int(text)  # int() would also take "1_000", U+0661
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (ASCII digits)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _port(text: str) -> int:
    value = _positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535)")
    return value


def _env_choice(name: str, default: str, choices: Sequence[str]) -> Any:
    """A ``choices`` option's default from ``ORDERS_LOCAL_<name>``, checked against them:
    argparse checks an option's value, never its default."""

    def choice(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice {text!r}: choose from {', '.join(choices)}"
            )
        return text

    return _env_value(name, default, choice)


AFFINITY = ["off", "auto"]
"""``--cpu-affinity``'s choices (orders_local.affinity)."""

SERVERS = ["uvicorn"]
"""``--server``'s choices: one since 2026-12-02 (decision 0014), kept for the variable and
for a next one."""


def _seconds(text: str) -> float:
    value = ascii_decimal(text)  # float() takes "1_0", "inf", "nan"
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 3600 seconds")
    return value


def seconds_text(value: float) -> str:
    """``value`` as the seconds options read it back: plain digits, never ``1e-05`` (what
    ``str`` gives), for a child process that parses it again."""
    from decimal import Decimal

    return format(Decimal(repr(value)), "f")


def _synchronous(text: str) -> str:
    from orders_local.sqlite import synchronous_mode

    try:
        return synchronous_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _db_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(_env("DB", "orders.db")),
        help=f"{help_text} [ORDERS_LOCAL_DB]",
    )


def _database_options(parser: argparse.ArgumentParser, *, pool: bool = True) -> None:
    group = parser.add_argument_group("PostgreSQL", "With --store postgres (the postgres extra).")
    group.add_argument(
        "--database-url",
        default=None,  # read in _database_settings: a default would print in --help
        metavar="URL",
        help="connection URL, e.g. postgresql://user:password@host:5432/orders?"
        "sslmode=verify-full; never printed [ORDERS_DATABASE_URL]",
    )
    group.add_argument(
        "--database-schema",
        default=os.environ.get("ORDERS_DATABASE_SCHEMA", "orders_core"),
        help="the PostgreSQL schema holding the tables; created and migrated forward "
        "[ORDERS_DATABASE_SCHEMA]",
    )
    group.add_argument(
        "--database-prepare",
        choices=["on", "off"],
        default=os.environ.get("ORDERS_DATABASE_PREPARE", "on"),
        help="prepare repeated statements on the server; off behind a transaction pooler "
        "(PgBouncer in transaction mode, RDS Proxy) [ORDERS_DATABASE_PREPARE]",
    )
    if not pool:
        return
    for bound, default, meaning in (
        ("min", "2", "kept open"),
        ("max", "16", "at most (serve uses no more than --threads)"),
    ):
        group.add_argument(
            f"--pool-{bound}",
            type=_positive_int,
            default=_env_value(f"POOL_{bound.upper()}", default, _positive_int),
            help=f"connections per process {meaning} [ORDERS_LOCAL_POOL_{bound.upper()}]",
        )


def database_settings(args: argparse.Namespace) -> dict[str, str]:
    """The postgres backend's settings from the options (orders_postgres.backend)."""
    return {
        "database_url": args.database_url or os.environ.get("ORDERS_DATABASE_URL", ""),
        "database_schema": args.database_schema,
        "database_prepare": getattr(args, "database_prepare", "on"),
        "pool_min": str(getattr(args, "pool_min", 1)),
        "pool_max": str(getattr(args, "pool_max", 1)),
    }


def _outbox_store(text: str) -> str:
    if text in ("sqlite", "postgres"):
        return text
    if text in BACKENDS:  # it was read as "sqlite", silently, and the wrong file opened
        raise argparse.ArgumentTypeError(
            f"{text!r} keeps no outbox this command reads: give --store sqlite or postgres"
        )
    raise argparse.ArgumentTypeError(f"invalid choice {text!r}: choose from sqlite, postgres")


def _outbox_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres"],
        default=_env_value("STORE", "sqlite", _outbox_store),
        help="whose outbox: a SQLite file (--db) or PostgreSQL (--database-url) "
        "[ORDERS_LOCAL_STORE]",
    )


def _sink_option(parser: argparse.ArgumentParser, choices: str) -> None:
    parser.add_argument(
        "--sink",
        default=_env("SINK", "stdout"),
        help=f"where events go: {choices} [ORDERS_LOCAL_SINK]; credentials only from "
        "ORDERS_WEBHOOK_AUTH_HEADER ('Name: value') or ORDERS_WEBHOOK_TOKEN_FILE, and "
        "ORDERS_NATS_CREDS, ORDERS_NATS_TOKEN or ORDERS_NATS_USER + ORDERS_NATS_PASSWORD",
    )


def _jwt_options(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_argument_group(
        "authentication",
        "Verify Authorization: Bearer JWTs (needs the jwt extra). Without --jwt-issuer, "
        "authentication is off: every caller is one anonymous principal.",
    )
    auth.add_argument(
        "--jwt-issuer",
        default=os.environ.get("ORDERS_JWT_ISSUER", ""),
        help="accepted token issuer (iss); turns authentication on [ORDERS_JWT_ISSUER]",
    )
    auth.add_argument(
        "--jwt-audience",
        default=os.environ.get("ORDERS_JWT_AUDIENCE", ""),
        help="accepted audience(s), comma-separated: aud, or client_id without aud; "
        "required with --jwt-issuer [ORDERS_JWT_AUDIENCE]",
    )
    auth.add_argument(
        "--jwks-url",
        default=os.environ.get("ORDERS_JWKS_URL", ""),
        help="the issuer's signing keys; default <issuer>/.well-known/jwks.json [ORDERS_JWKS_URL]",
    )
    auth.add_argument(
        "--jwt-algorithms",
        default=os.environ.get("ORDERS_JWT_ALGORITHMS", "RS256,ES256"),
        help="allowed signature algorithms, comma-separated; asymmetric only "
        "[ORDERS_JWT_ALGORITHMS]",
    )
    auth.add_argument(
        "--admin-scope",
        default=os.environ.get("ORDERS_ADMIN_SCOPE", "orders:admin"),
        help="the scope (in scope or scp) that grants access to every order [ORDERS_ADMIN_SCOPE]",
    )


def _synchronous_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--synchronous",
        type=_synchronous,
        default=_env_value("SYNCHRONOUS", "NORMAL", _synchronous),
        metavar="FULL|NORMAL",
        help="SQLite durability (--store sqlite only): NORMAL can lose the last acknowledged "
        "writes to a power loss or OS crash (not to a process crash); FULL fsyncs every "
        "commit [ORDERS_LOCAL_SYNCHRONOUS]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orders-local",
        description="The orders-core local runtime: SQLite, an HTTP server and an outbox relay.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the orders HTTP API",
        description="Serve the orders HTTP API on a local SQLite file and relay its events.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument(
        "--store",
        choices=list(BACKENDS),
        default=_env_choice("STORE", "sqlite", list(BACKENDS)),
        help="where orders live (memory keeps nothing); dynamodb needs the aws extra, "
        "postgres the postgres extra [ORDERS_LOCAL_STORE]",
    )
    _db_option(serve, "SQLite database file; created if missing")
    _database_options(serve)
    _synchronous_option(serve)
    serve.add_argument(
        "--table",
        default=_env("TABLE", ""),
        help="DynamoDB table, with --store dynamodb [ORDERS_LOCAL_TABLE]",
    )
    serve.add_argument(
        "--endpoint-url",
        default=_env("DYNAMODB_ENDPOINT", "") or None,
        help="DynamoDB endpoint, e.g. DynamoDB Local [ORDERS_LOCAL_DYNAMODB_ENDPOINT]",
    )
    serve.add_argument(
        "--host",
        default=_env("HOST", "127.0.0.1"),
        help="address to listen on; non-loopback needs --jwt-issuer or --allow-remote "
        "[ORDERS_LOCAL_HOST]",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=_env_value("PORT", "8080", _port),
        help="TCP port; 0 picks a free one [ORDERS_LOCAL_PORT]",
    )
    _sink_option(serve, "stdout, file:PATH, webhook:URL, or none")
    serve.add_argument(
        "--max-body",
        type=_positive_int,
        default=_env_value("MAX_BODY", "65536", _positive_int),
        help="largest request body in bytes, checked before it is read (100 items take a "
        "~15 KB); larger is 413 [ORDERS_LOCAL_MAX_BODY]",
    )
    serve.add_argument(
        "--read-timeout",
        type=_seconds,
        default=_env_value("READ_TIMEOUT", "5", _seconds),
        help="seconds a connection may take to send a request head, and then its body; "
        "an idle keep-alive connection closes after it too [ORDERS_LOCAL_READ_TIMEOUT]",
    )
    serve.add_argument(
        "--handler-timeout",
        type=_seconds,
        default=_env_value("HANDLER_TIMEOUT", "10", _seconds),
        help="deadline for handling one request [ORDERS_LOCAL_HANDLER_TIMEOUT]",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        default=_env("ALLOW_REMOTE", "") in {"1", "true", "yes"},
        help="allow listening on a non-loopback address without authentication "
        "[ORDERS_LOCAL_ALLOW_REMOTE=1]",
    )
    _jwt_options(serve)
    serve.add_argument(
        "--relay",
        choices=["process", "thread"],
        default=_env_choice("RELAY", "process", ["process", "thread"]),
        help="run the outbox relay in its own process or in a thread of the server's "
        "[ORDERS_LOCAL_RELAY]",
    )

    serve.add_argument(
        "--relay-backoff-base",
        type=_seconds,
        default=_env_value("RELAY_BACKOFF_BASE", "0.1", _seconds),
        help="seconds the relay pauses after a first failed delivery; each next pause "
        "doubles, with jitter [ORDERS_LOCAL_RELAY_BACKOFF_BASE]",
    )
    serve.add_argument(
        "--relay-backoff-cap",
        type=_seconds,
        default=_env_value("RELAY_BACKOFF_CAP", "10", _seconds),
        help="longest pause between delivery attempts while the sink fails; the console's "
        "redeliver ends a pause at once [ORDERS_LOCAL_RELAY_BACKOFF_CAP]",
    )
    serve.add_argument(
        "--console",
        choices=["on", "off"],
        default=_env_choice("CONSOLE", "on", ["on", "off"]),
        help="serve the browser console at /console: admins only with authentication on, "
        "loopback callers only with it off [ORDERS_LOCAL_CONSOLE]",
    )
    serve.add_argument(
        "--traces-ui-url",
        default=_env("TRACES_UI_URL", ""),
        metavar="TEMPLATE",
        help="link each trace id in the console to this URL, {traceId} replaced; e.g. "
        "http://localhost:16686/trace/{traceId} for Jaeger [ORDERS_LOCAL_TRACES_UI_URL]",
    )
    serve.add_argument(
        "--server",
        choices=SERVERS,
        default=_env_choice("SERVER", "uvicorn", SERVERS),
        help="HTTP front end: the ASGI app on uvicorn (httptools, uvloop); the one choice "
        "[ORDERS_LOCAL_SERVER]",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=_env_value("WORKERS", "1", _positive_int),
        help="server processes; more than 1 only with a networked store, dynamodb or "
        "postgres (SQLite has one writer) [ORDERS_LOCAL_WORKERS]",
    )
    serve.add_argument(
        "--cpu-affinity",
        choices=AFFINITY,
        default=_env_choice("CPU_AFFINITY", "off", AFFINITY),
        help="auto: pin each server process to a CPU of its own (Linux; networked stores; "
        "for hosts or pods whose CPUs are this server's alone) [ORDERS_LOCAL_CPU_AFFINITY]",
    )
    serve.add_argument(
        "--threads",
        type=_positive_int,
        default=_env_value("THREADS", "32", _positive_int),
        help="threads per process for a networked store's requests, and the DynamoDB "
        "client's connection pool [ORDERS_LOCAL_THREADS]",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=_env_value("MAX_CONNECTIONS", "1024", _positive_int),
        help="concurrent connections or requests beyond which requests get 503 "
        "[ORDERS_LOCAL_MAX_CONNECTIONS]",
    )

    relay = commands.add_parser(
        "relay",
        help="publish a database's outbox events (serve runs one of these itself)",
        description="Publish the outbox events of a SQLite file to a sink, in commit order, "
        "at least once, until stopped. `serve` runs one beside itself; run this for a "
        "database whose server relays nothing (--sink none).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _outbox_store_option(relay)
    _db_option(relay, "SQLite database file")
    _synchronous_option(relay)  # its own writes: the failed attempts it records
    _database_options(relay)
    _sink_option(relay, "stdout, file:PATH or webhook:URL")
    relay.add_argument(
        "--poll-interval",
        type=_seconds,
        default=0.25,
        help="seconds between looks at the outbox when nothing wakes the relay",
    )
    relay.add_argument(
        "--backoff-cap",
        type=_seconds,
        default=10.0,  # relay.BACKOFF_CAP, not imported here: the CLI loads the core lazily
        help="longest pause between attempts while the sink fails; the first is 0.1 s and "
        "each next one doubles, with jitter",
    )
    relay.add_argument(
        "--backoff-base",
        type=_seconds,
        default=0.1,  # relay.BACKOFF_BASE
        help="pause after a first failed attempt; each next one doubles, up to --backoff-cap",
    )
    relay.add_argument(
        "--marks-fd",
        type=int,
        help=argparse.SUPPRESS,  # serve's child: report deliveries here, the server marks them
    )
    relay.add_argument(
        "--lifeline",
        action="store_true",
        help=argparse.SUPPRESS,  # serve's child: stdin wakes it, end of file stops it
    )

    events = commands.add_parser(
        "events",
        help="list outbox events and their delivery state",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _outbox_store_option(events)
    _db_option(events, "SQLite database file")
    _database_options(events, pool=False)
    events.add_argument("--pending", action="store_true", help="only events not yet delivered")
    events.add_argument("--limit", type=_positive_int, default=100, help="at most this many")
    events.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    return parser
