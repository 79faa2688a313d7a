"""``orders-local``: run the local runtime, or look at its outbox.

    orders-local serve [--db PATH] [--host HOST] [--port PORT] [--sink SINK] ...
    orders-local relay [--db PATH | --store postgres --database-url URL] [--sink SINK] ...
    orders-local events [--db PATH | --store postgres --database-url URL] [--pending] ...

Every option can also come from an ORDERS_LOCAL_* environment variable (see --help), the
JWT ones from ORDERS_JWT_* (shared with other runtimes); a command-line option wins over the
environment. The PostgreSQL connection URL comes only from --database-url or
ORDERS_DATABASE_URL, and is never printed: it may hold a password.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from orders_core.numbers import ascii_decimal, ascii_int
from orders_local.backends import BACKENDS

if TYPE_CHECKING:
    from orders_local.runtime import LocalConfig
    from orders_postgres.store import PostgresStore

ENV = "ORDERS_LOCAL_"
T = TypeVar("T")


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV + name, default)


def _env_value(
    parser: argparse.ArgumentParser, name: str, default: str, parse: Callable[[str], T]
) -> T:
    """An option's default from ``ORDERS_LOCAL_<name>``: a bad value is a usage error naming
    the variable (exit 2), not a traceback from inside the parser's construction."""
    text = _env(name, default)
    try:
        return parse(text)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"{ENV}{name}: {exc}")


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


def _seconds(text: str) -> float:
    value = ascii_decimal(text)  # float() takes "1_0", "inf", "nan"
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 3600 seconds")
    return value


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
    if not pool:
        return
    for bound, default, meaning in (
        ("min", "2", "kept open"),
        ("max", "16", "at most (serve uses no more than --threads)"),
    ):
        group.add_argument(
            f"--pool-{bound}",
            type=_positive_int,
            default=_env_value(parser, f"POOL_{bound.upper()}", default, _positive_int),
            help=f"connections per process {meaning} [ORDERS_LOCAL_POOL_{bound.upper()}]",
        )


def _database_settings(args: argparse.Namespace) -> dict[str, str]:
    """The postgres backend's settings from the options (orders_postgres.backend)."""
    return {
        "database_url": args.database_url or os.environ.get("ORDERS_DATABASE_URL", ""),
        "database_schema": args.database_schema,
        "pool_min": str(getattr(args, "pool_min", 1)),
        "pool_max": str(getattr(args, "pool_max", 1)),
    }


def _outbox_store_option(parser: argparse.ArgumentParser) -> None:
    store = _env("STORE", "sqlite")
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres"],
        default=store if store == "postgres" else "sqlite",
        help="whose outbox: a SQLite file (--db) or PostgreSQL (--database-url) "
        "[ORDERS_LOCAL_STORE]",
    )


def _sink_option(parser: argparse.ArgumentParser, choices: str) -> None:
    parser.add_argument(
        "--sink",
        default=_env("SINK", "stdout"),
        help=f"where events go: {choices} [ORDERS_LOCAL_SINK]",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        default=_env("STORE", "sqlite"),
        help="where orders live (memory keeps nothing); dynamodb needs the aws extra, "
        "postgres the postgres extra [ORDERS_LOCAL_STORE]",
    )
    _db_option(serve, "SQLite database file; created if missing")
    _database_options(serve)
    serve.add_argument(
        "--synchronous",
        type=_synchronous,
        default=_env_value(serve, "SYNCHRONOUS", "NORMAL", _synchronous),
        metavar="FULL|NORMAL",
        help="SQLite durability: NORMAL can lose the last acknowledged writes to a power loss "
        "or OS crash (not to a process crash); FULL fsyncs every commit [ORDERS_LOCAL_SYNCHRONOUS]",
    )
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
        default=_env_value(serve, "PORT", "8080", _port),
        help="TCP port; 0 picks a free one [ORDERS_LOCAL_PORT]",
    )
    _sink_option(serve, "stdout, file:PATH, webhook:URL, or none")
    serve.add_argument(
        "--max-body",
        type=_positive_int,
        default=_env_value(serve, "MAX_BODY", "65536", _positive_int),
        help="largest request body in bytes, checked before it is read (100 items take a "
        "few KB); larger is 413 [ORDERS_LOCAL_MAX_BODY]",
    )
    serve.add_argument(
        "--read-timeout",
        type=_seconds,
        default=_env_value(serve, "READ_TIMEOUT", "5", _seconds),
        help="seconds a connection may take to send a request head, and then its body; "
        "an idle keep-alive connection closes after it too [ORDERS_LOCAL_READ_TIMEOUT]",
    )
    serve.add_argument(
        "--handler-timeout",
        type=_seconds,
        default=_env_value(serve, "HANDLER_TIMEOUT", "10", _seconds),
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
        default=_env("RELAY", "process"),
        help="run the outbox relay in its own process or in a thread of the server's "
        "[ORDERS_LOCAL_RELAY]",
    )

    serve.add_argument(
        "--server",
        choices=["uvicorn", "builtin"],
        default=_env("SERVER", "uvicorn"),
        help="HTTP front end: the ASGI app on uvicorn (httptools, uvloop), or the older "
        "hand-written server [ORDERS_LOCAL_SERVER]",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=_env_value(serve, "WORKERS", "1", _positive_int),
        help="server processes; more than 1 only with --store dynamodb (SQLite has one "
        "writer) [ORDERS_LOCAL_WORKERS]",
    )
    serve.add_argument(
        "--threads",
        type=_positive_int,
        default=_env_value(serve, "THREADS", "32", _positive_int),
        help="threads per process for a networked store's requests, and the DynamoDB "
        "client's connection pool [ORDERS_LOCAL_THREADS]",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=_env_value(serve, "MAX_CONNECTIONS", "1024", _positive_int),
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


def fail(message: str) -> int:
    print(f"orders-local: error: {message}", file=sys.stderr)
    return 1


def check_db_path(db: Path) -> str | None:
    """A reason the database cannot be used, or None."""
    parent = db.resolve().parent
    if db.is_dir():
        return f"--db {db} is a directory"
    if parent.exists() and not parent.is_dir():
        return f"the parent of --db {db} is not a directory"
    if not parent.is_dir():
        return f"the directory of --db {db} does not exist"
    if not os.access(parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        return f"--db {db} is not writable"
    return None


def _write_hint(db: Path) -> str:
    """Why a read can need writes: WAL mode keeps -wal and -shm files beside the database,
    and opening runs pending migrations."""
    try:
        if check_db_path(db) is None:
            return ""
    except OSError:  # cannot even look: say what it needs all the same
        pass
    return (
        f"; orders-local needs write access to {db} and to its directory "
        f"{db.resolve().parent} (SQLite keeps -wal and -shm files beside the database)"
    )


def _stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set: the main thread waits on it, then stops in order."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _report_undelivered(undelivered: int) -> None:
    if undelivered:
        print(
            f"orders-local: {undelivered} event(s) not delivered yet; they will be after the "
            "next start",
            file=sys.stderr,
        )


class UsageError(ValueError):
    """A setting ``serve`` (or the ASGI factory) refuses, with the reason."""


def prepare(args: argparse.Namespace) -> tuple[LocalConfig, dict[str, str]]:
    """The runtime's config and the backend's settings from ``serve``'s options; warnings
    on stderr; UsageError for what cannot run. Shared with ``orders_local.asgi_app``."""
    from orders_local.runtime import LocalConfig, is_loopback

    jwt = None
    if args.jwt_issuer:
        from orders_local.bearer import BearerConfig

        jwt = BearerConfig.parse(
            issuer=args.jwt_issuer,
            audience=args.jwt_audience,
            jwks_url=args.jwks_url,
            algorithms=args.jwt_algorithms,
            admin_scope=args.admin_scope,
        )
    elif args.jwt_audience or args.jwks_url:
        raise UsageError("--jwt-audience and --jwks-url need --jwt-issuer (ORDERS_JWT_ISSUER)")
    if not is_loopback(args.host):
        if jwt is None and not args.allow_remote:
            raise UsageError(
                f"refusing to listen on non-loopback address {args.host} without "
                "authentication; set --jwt-issuer and --jwt-audience, or pass --allow-remote "
                "if you mean it"
            )
        if jwt is None:
            print(
                f"orders-local: warning: listening on {args.host}, reachable from other "
                "machines, with authentication off: anyone who can reach it can read and "
                "change every order",
                file=sys.stderr,
            )
        else:
            print(
                f"orders-local: listening on {args.host} with JWT authentication over plain "
                "HTTP: terminate TLS in front of it",
                file=sys.stderr,
            )
    if args.workers > 1 and args.store not in ("dynamodb", "postgres"):
        raise UsageError(
            f"--workers {args.workers} needs a networked store (--store dynamodb or postgres): "
            f"{'SQLite has one writer, and group commit lives in one process' if args.store == 'sqlite' else 'each worker would keep orders of its own'}"  # noqa: E501
        )
    if args.workers > 1 and args.server != "uvicorn":
        raise UsageError("--workers needs --server uvicorn")
    if args.store == "sqlite" and (reason := check_db_path(args.db)) is not None:
        raise UsageError(reason)
    settings = {
        "db": str(args.db),
        "synchronous": args.synchronous,
        "table": args.table or "",
        "endpoint_url": args.endpoint_url or "",
        "max_pool_connections": str(args.threads),
        **_database_settings(args),
    }
    config = LocalConfig(
        db=args.db,
        host=args.host,
        port=args.port,
        sink=args.sink,
        max_body=args.max_body,
        synchronous=args.synchronous,
        read_timeout=args.read_timeout,
        handler_timeout=args.handler_timeout,
        allow_remote=args.allow_remote,
        relay=args.relay,
        server=args.server,
        threads=args.threads,
        max_connections=args.max_connections,
        jwt=jwt,
    )
    return config, settings


def serve(args: argparse.Namespace) -> int:
    from orders_local.runtime import LocalRuntime, configure_logging
    from orders_local.sqlite import SchemaTooNew

    try:
        config, settings = prepare(args)
    except ValueError as exc:
        return fail(str(exc))
    configure_logging()
    if args.workers > 1:
        return _serve_workers(args, config)
    from orders_core.telemetry import setup

    if setup.configure("orders-local"):
        print("orders-local: OpenTelemetry SDK configured from OTEL_* variables", file=sys.stderr)
    try:
        from orders_local.backends import open_backend

        runtime = LocalRuntime(config, backend=open_backend(args.store, settings))
    except ValueError as exc:
        return fail(str(exc))
    except OSError as exc:
        return _listen_failed(args, exc)
    except (sqlite3.Error, SchemaTooNew) as exc:
        return fail(f"cannot open database {args.db}: {exc}")

    stop = _stop_on_signals()
    runtime.start()
    print(runtime.describe(), file=sys.stderr, flush=True)
    stop.wait()
    print("orders-local: shutting down", file=sys.stderr, flush=True)
    undelivered = runtime.stop(timeout=args.handler_timeout)
    setup.flush()
    _report_undelivered(undelivered)
    return 0


def _listen_failed(args: argparse.Namespace, exc: OSError) -> int:
    if exc.errno == errno.EADDRINUSE:
        return fail(f"port {args.port} on {args.host} is already in use")
    return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")


def _serve_workers(args: argparse.Namespace, config: LocalConfig) -> int:
    """``--workers N``: uvicorn's supervisor runs N processes on one listening socket, each
    building its runtime with ``orders_local.asgi_app:factory`` from the same options,
    passed on as ORDERS_LOCAL_* variables. uvicorn handles SIGINT/SIGTERM."""
    from uvicorn.supervisors import Multiprocess

    from orders_local.uvicorn_server import listen, uvicorn_config

    for name, value in (
        ("STORE", args.store),
        ("TABLE", args.table or ""),
        ("DYNAMODB_ENDPOINT", args.endpoint_url or ""),
        ("HOST", args.host),
        ("MAX_BODY", str(args.max_body)),
        ("READ_TIMEOUT", str(args.read_timeout)),
        ("HANDLER_TIMEOUT", str(args.handler_timeout)),
        ("THREADS", str(args.threads)),
        ("ALLOW_REMOTE", "1" if args.allow_remote else ""),
        ("SINK", args.sink),
        ("POOL_MIN", str(args.pool_min)),
        ("POOL_MAX", str(args.pool_max)),
    ):
        os.environ[ENV + name] = value
    database = _database_settings(args)
    data = f"DynamoDB table {args.table}"
    if args.store == "postgres":  # checked here: each worker failing alone would loop
        if not database["database_url"]:
            return fail("--store postgres needs --database-url (or ORDERS_DATABASE_URL)")
        try:
            from orders_postgres.backend import describe_url

            data = f"PostgreSQL {describe_url(database['database_url'])}"
        except ImportError:
            return fail("--store postgres needs the postgres extra: orders-core[postgres]")
        except ValueError as exc:
            return fail(str(exc))
    for name, value in (
        ("ORDERS_DATABASE_URL", database["database_url"]),
        ("ORDERS_DATABASE_SCHEMA", database["database_schema"]),
        ("ORDERS_JWT_ISSUER", args.jwt_issuer),
        ("ORDERS_JWT_AUDIENCE", args.jwt_audience),
        ("ORDERS_JWKS_URL", args.jwks_url),
        ("ORDERS_JWT_ALGORITHMS", args.jwt_algorithms),
        ("ORDERS_ADMIN_SCOPE", args.admin_scope),
    ):
        os.environ[name] = value
    try:
        sock = listen((args.host, args.port), 128)
    except OSError as exc:
        return _listen_failed(args, exc)
    host, port = sock.getsockname()[:2]
    uconfig = uvicorn_config(
        "orders_local.asgi_app:factory",
        factory=True,
        workers=args.workers,
        read_timeout=config.read_timeout,
        max_connections=config.max_connections,
    )
    print(
        f"orders-local listening on http://{host}:{port} (data: {data}; {args.workers} workers)",
        file=sys.stderr,
        flush=True,
    )
    Multiprocess(uconfig, sockets=[sock]).run()
    return 0


def run_relay(args: argparse.Namespace) -> int:
    from orders_core.relay import OutboxRelay
    from orders_core.telemetry import setup
    from orders_local.relay_process import MarksThroughServer, follow_lifeline
    from orders_local.runtime import configure_logging
    from orders_local.sinks import JsonLinesSink, sink_from_spec
    from orders_local.sqlite import SchemaTooNew, SQLiteStore

    if args.store == "sqlite" and not args.db.is_file():
        return fail(f"no database at {args.db}")
    try:
        publisher = sink_from_spec(args.sink)
    except ValueError as exc:
        return fail(str(exc))
    if publisher is None:
        return fail("--sink none: there is nowhere to relay to")
    configure_logging()
    setup.configure("orders-local")
    watch_commits = None
    if args.store == "postgres":  # one relay per schema publishes; others stand by
        from orders_local.backends import open_backend

        try:
            backend = open_backend("postgres", _database_settings(args))
        except ValueError as exc:
            return fail(str(exc))
        assert backend.outbox is not None
        outbox, close, where = backend.outbox, backend.close, backend.describe
        watch_commits = backend.watch_commits
    else:
        try:
            store = SQLiteStore(args.db)
        except (sqlite3.Error, SchemaTooNew) as exc:
            return fail(f"cannot open database {args.db}: {exc}")
        close, where = store.close, str(args.db)
        outbox = store if args.marks_fd is None else MarksThroughServer(store, args.marks_fd)
    relay = OutboxRelay(
        outbox,
        publisher,
        poll_interval=args.poll_interval,
        backoff_cap=args.backoff_cap,
        destination=args.sink,
    )
    stop = _stop_on_signals()
    if watch_commits is not None:
        watch_commits(relay.wake)
    relay.start()
    if args.marks_fd is not None:  # the server it reports to may die: then stop at once

        def stop_when_gone() -> None:
            relay.gone.wait()
            stop.set()

        threading.Thread(target=stop_when_gone, name="gone", daemon=True).start()
    if args.lifeline:  # serve's child: stop when the server closes its end, or on a signal

        def follow() -> None:
            follow_lifeline(relay.wake)
            stop.set()

        threading.Thread(target=follow, name="lifeline", daemon=True).start()
    else:
        print(f"orders-local: relaying {where} to {args.sink}", file=sys.stderr, flush=True)
    stop.wait()
    undelivered = relay.stop(timeout=10.0)
    if isinstance(publisher, JsonLinesSink):
        publisher.close()
    close()
    setup.flush()
    if not args.lifeline:  # the server reports its relay's count itself
        _report_undelivered(undelivered)
    return 0


def list_events(args: argparse.Namespace) -> int:
    from orders_local.sqlite import SchemaTooNew, SQLiteStore

    store: SQLiteStore | PostgresStore
    if args.store == "postgres":
        try:
            from orders_postgres.backend import open_store
        except ImportError:
            return fail("--store postgres needs the postgres extra: orders-core[postgres]")
        try:
            store = open_store(_database_settings(args))
        except ValueError as exc:
            return fail(str(exc))
    else:
        try:
            if not args.db.is_file():
                return fail(f"no database at {args.db}")
            store = SQLiteStore(args.db)
        except (sqlite3.Error, SchemaTooNew, OSError) as exc:
            return fail(f"cannot open database {args.db}: {exc}{_write_hint(args.db)}")
    try:
        entries = store.outbox_entries(pending_only=args.pending, limit=args.limit)
    finally:
        store.close()
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
        return 0
    print(f"{'POS':>6}  {'STATE':<10} {'TRIES':>5}  {'TYPE':<34} EVENT ID")
    for e in entries:
        state = "delivered" if e["deliveredAt"] else "pending"
        print(f"{e['position']:>6}  {state:<10} {e['attempts']:>5}  {e['type']!s:<34} {e['id']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.captureWarnings(True)
    if args.command == "serve":
        return serve(args)
    if args.command == "relay":
        return run_relay(args)
    return list_events(args)


if __name__ == "__main__":
    sys.exit(main())
