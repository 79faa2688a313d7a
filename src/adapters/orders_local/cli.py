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
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orders_local.arguments import build_parser, database_settings
from orders_local.exits import fail, listen_failed

if TYPE_CHECKING:
    from orders_local.runtime import LocalConfig
    from orders_postgres.store import PostgresStore


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
    if args.cpu_affinity == "auto":
        from orders_local import affinity

        if args.store not in ("dynamodb", "postgres"):
            why = (
                "the SQLite server runs one thread, and its relay is a process of its own"
                if args.store == "sqlite"
                else "the memory store makes no round trips to wait on"
            )
            raise UsageError(
                "--cpu-affinity auto is for a networked store "
                f"(--store dynamodb or postgres): {why}"
            )
        if not affinity.supported():
            raise UsageError("--cpu-affinity auto needs Linux (sched_setaffinity)")
    if args.store == "sqlite" and (reason := check_db_path(args.db)) is not None:
        raise UsageError(reason)
    if args.traces_ui_url:
        from orders_local.console import check_trace_template

        check_trace_template(args.traces_ui_url)  # a ValueError names what is wrong
    settings = {
        "db": str(args.db),
        "synchronous": args.synchronous,
        "table": args.table or "",
        "endpoint_url": args.endpoint_url or "",
        "max_pool_connections": str(args.threads),
        **database_settings(args),
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
        relay_backoff_base=args.relay_backoff_base,
        relay_backoff_cap=args.relay_backoff_cap,
        console=args.console == "on",
        traces_ui_url=args.traces_ui_url or None,
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
        from orders_local.workers import serve_workers

        return serve_workers(args, config, settings)
    from orders_core.telemetry import setup

    if setup.configure("orders-local"):
        print("orders-local: OpenTelemetry SDK configured from OTEL_* variables", file=sys.stderr)
    if args.cpu_affinity == "auto":  # pins the threads OTel started too; later ones inherit
        from orders_local.affinity import claim_cpu

        claim_cpu()
    try:
        from orders_local.backends import open_backend

        runtime = LocalRuntime(config, backend=open_backend(args.store, settings))
    except ValueError as exc:
        return fail(str(exc))
    except OSError as exc:
        return listen_failed(args, exc)
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


def run_relay(args: argparse.Namespace) -> int:
    from orders_core.application import OutboxRelay
    from orders_core.telemetry import setup
    from orders_local.relay_process import MarksThroughServer, follow_lifeline
    from orders_local.runtime import configure_logging
    from orders_local.sinks import sink_from_spec
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
            backend = open_backend("postgres", database_settings(args))
        except ValueError as exc:
            publisher.close()
            return fail(str(exc))
        assert backend.outbox is not None
        outbox, close, where = backend.outbox, backend.close, backend.describe
        watch_commits = backend.watch_commits
    else:
        try:
            store = SQLiteStore(args.db, synchronous=args.synchronous)
        except (sqlite3.Error, SchemaTooNew) as exc:
            publisher.close()
            return fail(f"cannot open database {args.db}: {exc}")
        close, where = store.close, f"{args.db}, synchronous {store.synchronous}"
        outbox = store if args.marks_fd is None else MarksThroughServer(store, args.marks_fd)
    relay = OutboxRelay(
        outbox,
        publisher,
        poll_interval=args.poll_interval,
        backoff_cap=args.backoff_cap,
        backoff_base=args.backoff_base,
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
            follow_lifeline(relay.wake, retry=relay.retry_now)
            stop.set()

        threading.Thread(target=follow, name="lifeline", daemon=True).start()
    else:
        print(f"orders-local: relaying {where} to {args.sink}", file=sys.stderr, flush=True)
    stop.wait()
    undelivered = relay.stop(timeout=10.0)
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
            store = open_store(database_settings(args))
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
