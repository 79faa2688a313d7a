"""The local runtime as an ASGI app, for people who run their own server:

    uvicorn 'orders_local.asgi_app:factory' --factory --host 127.0.0.1 --port 8080

``factory()`` reads the same ORDERS_LOCAL_* and ORDERS_JWT_* variables as
``orders-local serve`` (store, database or table, sink, relay, limits, authentication) and
builds the backend, the service and the relay; the relay starts with the app's lifespan
and makes its final pass at shutdown. The server's own options (host, port, workers,
limits) are the server's: give it at least ``--lifespan on``, ``--limit-concurrency`` and a
keep-alive timeout. uvicorn's flags bound neither the time a head may take nor, with
httptools, its size; ``orders_local.uvicorn_server.uvicorn_config`` (what ``orders-local
serve`` runs) adds both. The README's "Your own server" lists the flags and what each gives.
"""

from __future__ import annotations

import dataclasses

from orders_core.edges.asgi import OrdersAsgi


def factory() -> OrdersAsgi:
    """A fresh runtime's ASGI app, configured from the environment (one per worker)."""
    from orders_local.arguments import build_parser
    from orders_local.backends import open_backend
    from orders_local.cli import prepare
    from orders_local.runtime import LocalRuntime, configure_logging

    args = build_parser().parse_args(["serve"])  # every default comes from the environment
    args.workers = 1  # this process is one worker, whatever the supervisor runs
    config, settings = prepare(args)
    config = dataclasses.replace(config, server="external")
    configure_logging()
    if args.cpu_affinity == "auto":  # each worker its own CPU, before its threads start
        from orders_local.affinity import claim_cpu

        claim_cpu()
    runtime = LocalRuntime(config, backend=open_backend(args.store, settings))
    assert runtime.app is not None
    return runtime.app
