"""The ``postgres`` backend: the factory ``orders-local --store postgres`` opens by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from orders_core.application import Backend
from orders_core.edges.numbers import ascii_int
from orders_core.errors import StoreUnavailable
from orders_postgres.driver import Database
from orders_postgres.relay import CommitListener, ElectedOutbox
from orders_postgres.schema import SchemaTooNew, schema_name
from orders_postgres.store import DEFAULT_SCHEMA, PostgresStore

DEFAULT_POOL_MIN: Final = 2
DEFAULT_POOL_MAX: Final = 16


def describe_url(url: str) -> str:
    """``host:port/database`` of a connection URL or conninfo string, never its password
    (nor its user: the startup line and errors name where the data is, nothing more).
    ValueError, not echoing the text, when it cannot be parsed."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        raise ValueError("the database URL is not a PostgreSQL connection URL") from None
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or "5432")
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or '(default)'}"


def _reason(exc: BaseException, url: str) -> str:
    """The driver's first line, with the password taken out should it ever appear."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = str(conninfo_to_dict(url).get("password") or "")
    return text.replace(password, "***") if password else text


def _size(settings: Mapping[str, str], name: str, default: int) -> int:
    text = settings.get(name) or str(default)
    value = ascii_int(text)
    if value is None or value <= 0:
        raise ValueError(f"{name.replace('_', ' ')} must be a positive integer, not {text!r}")
    return value


def _switch(settings: Mapping[str, str], name: str, default: bool) -> bool:
    text = settings.get(name) or ("on" if default else "off")
    if text not in ("on", "off"):
        raise ValueError(f"{name.replace('_', ' ')} must be on or off, not {text!r}")
    return text == "on"


def open_store(settings: Mapping[str, str]) -> PostgresStore:
    """The store alone, from the same ``settings`` as :func:`backend` (``orders-local
    events``); ValueError, naming host and database only, when it cannot be opened."""
    url = settings.get("database_url") or ""
    if not url:
        raise ValueError("--store postgres needs --database-url (or ORDERS_DATABASE_URL)")
    where = describe_url(url)
    schema = schema_name(settings.get("database_schema") or DEFAULT_SCHEMA)
    pool_min = _size(settings, "pool_min", DEFAULT_POOL_MIN)
    pool_max = _size(settings, "pool_max", DEFAULT_POOL_MAX)
    if pool_min > pool_max:
        raise ValueError(f"pool min ({pool_min}) is larger than pool max ({pool_max})")
    prepare = _switch(settings, "database_prepare", True)
    try:
        psycopg.connect(url, connect_timeout=10).close()  # the driver's reason, if it fails
    except psycopg.Error as exc:
        raise ValueError(f"cannot connect to PostgreSQL {where}: {_reason(exc, url)}") from None
    database = Database(url, min_size=pool_min, max_size=pool_max, prepare=prepare)
    try:
        database.open()
        return PostgresStore(database, schema=schema)
    except (StoreUnavailable, SchemaTooNew, psycopg.Error) as exc:
        database.close()
        raise ValueError(f"cannot use PostgreSQL {where}: {_reason(exc, url)}") from None


def backend(settings: Mapping[str, str]) -> Backend:
    """The PostgreSQL backend (:data:`orders_core.application.BackendFactory`).

    ``settings``: ``database_url`` (required: a ``postgresql://`` URL or a conninfo string;
    TLS with ``sslmode=verify-full`` and ``sslrootcert=`` in it), ``pool_min`` and
    ``pool_max`` (connections per process), ``database_schema`` (``orders_core``),
    ``database_prepare`` (``on``, the default, or ``off`` behind a transaction pooler:
    :class:`~orders_postgres.driver.Database`'s ``prepare``). The
    connection is tried and the schema migrated here, so a wrong URL fails at startup. The
    outbox is the elected relay's view (:class:`ElectedOutbox`); ``watch_commits`` LISTENs;
    the store is also the console's ``browser`` and ``inspector`` (orders_postgres.inspect).
    """
    store = open_store(settings)
    outbox = ElectedOutbox(store)
    listener = CommitListener(store)

    def close() -> None:
        listener.close()
        outbox.close()
        store.close()

    database = store.database
    return Backend(
        name="postgres",
        store=store,
        describe=f"PostgreSQL {describe_url(database.url)}, schema {store.schema}, "
        f"pool {database.min_size}-{database.max_size}",
        outbox=outbox,
        watch_commits=listener.subscribe,
        close=close,
        browser=store,
        inspector=store,
    )
