"""``orders-local serve --workers N``: uvicorn's supervisor and the options its workers get.

Each worker builds its runtime with ``orders_local.asgi_app:factory``, which parses
``serve``'s options from ORDERS_LOCAL_* alone; the supervisor resolves them once (command
line over environment) and hands every one on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from orders_local.arguments import ENV, database_settings, seconds_text
from orders_local.exits import fail, listen_failed

if TYPE_CHECKING:
    from orders_local.runtime import LocalConfig


def worker_environment(args: argparse.Namespace) -> dict[str, str]:
    """The variables a worker's factory parses its options from (ORDERS_LOCAL_*, and the
    ORDERS_DATABASE_* and ORDERS_JWT_* other runtimes share): every one the supervisor
    resolved, not only those the worker uses. One left out would reach the worker as
    inherited, and a bad inherited value that the command line overrode here would make
    each worker exit at start, and be respawned (decision 0023)."""
    database = database_settings(args)
    shared = {  # the variables other runtimes read too, as the supervisor resolved them
        "ORDERS_DATABASE_URL": database["database_url"],
        "ORDERS_DATABASE_SCHEMA": database["database_schema"],
        "ORDERS_DATABASE_PREPARE": database["database_prepare"],
        "ORDERS_JWT_ISSUER": args.jwt_issuer,
        "ORDERS_JWT_AUDIENCE": args.jwt_audience,
        "ORDERS_JWKS_URL": args.jwks_url,
        "ORDERS_JWT_ALGORITHMS": args.jwt_algorithms,
        "ORDERS_ADMIN_SCOPE": args.admin_scope,
    }
    return shared | {
        ENV + name: value
        for name, value in (
            ("STORE", args.store),
            ("DB", str(args.db)),
            ("TABLE", args.table or ""),
            ("DYNAMODB_ENDPOINT", args.endpoint_url or ""),
            ("HOST", args.host),
            ("PORT", str(args.port)),
            ("MAX_BODY", str(args.max_body)),
            ("READ_TIMEOUT", seconds_text(args.read_timeout)),
            ("HANDLER_TIMEOUT", seconds_text(args.handler_timeout)),
            ("THREADS", str(args.threads)),
            ("MAX_CONNECTIONS", str(args.max_connections)),
            ("WORKERS", str(args.workers)),
            ("CPU_AFFINITY", args.cpu_affinity),
            ("ALLOW_REMOTE", "1" if args.allow_remote else ""),
            ("SINK", args.sink),
            ("RELAY", args.relay),
            ("RELAY_BACKOFF_BASE", seconds_text(args.relay_backoff_base)),
            ("RELAY_BACKOFF_CAP", seconds_text(args.relay_backoff_cap)),
            ("CONSOLE", args.console),
            ("TRACES_UI_URL", args.traces_ui_url),
            ("SERVER", args.server),
            ("SYNCHRONOUS", args.synchronous),
            ("POOL_MIN", str(args.pool_min)),
            ("POOL_MAX", str(args.pool_max)),
        )
    }


def serve_workers(
    args: argparse.Namespace, config: LocalConfig, settings: Mapping[str, str]
) -> int:
    """``--workers N``: uvicorn's supervisor runs N processes on one listening socket, each
    building its runtime with ``orders_local.asgi_app:factory`` from the same options,
    passed on as ORDERS_LOCAL_* variables. uvicorn handles SIGINT/SIGTERM.

    The backend is opened (and closed) here first, from the same ``settings``: a store a
    worker cannot open (``--store dynamodb`` without ``--table``, a wrong table, endpoint
    or database) would make each worker exit at start, with a traceback, and uvicorn would
    start it again, for ever."""
    from uvicorn.supervisors import Multiprocess

    from orders_local.uvicorn_server import listen, uvicorn_config

    os.environ.update(worker_environment(args))
    data = f"DynamoDB table {args.table}"
    if args.store == "postgres":  # checked here: each worker failing alone would loop
        if not settings["database_url"]:
            return fail("--store postgres needs --database-url (or ORDERS_DATABASE_URL)")
        try:
            from orders_postgres.backend import describe_url

            data = f"PostgreSQL {describe_url(settings['database_url'])}"
        except ImportError:
            return fail("--store postgres needs the postgres extra: orders-core[postgres]")
        except ValueError as exc:
            return fail(str(exc))
    from orders_local.backends import open_backend

    try:
        probe = open_backend(args.store, settings)
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    probe.close()
    try:
        sock = listen((args.host, args.port), 128)
    except OSError as exc:
        return listen_failed(args, exc)
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
