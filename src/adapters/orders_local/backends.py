"""The stores ``orders-local`` can run on, by name: each a backend module's factory.

Resolved lazily, so only the chosen backend's driver is imported (boto3 only for
``dynamodb``). Adding a store is a line here (and its extra in pyproject.toml): see
docs/extending.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Final

from orders_core.application import Backend, BackendFactory

BACKENDS: Final[dict[str, tuple[str, str | None]]] = {
    # name: ("module:factory", the extra its driver needs)
    "sqlite": ("orders_local.sqlite:backend", None),
    "dynamodb": ("orders_aws.dynamodb:backend", "aws"),
    "firestore": ("orders_gcp.firestore:backend", "gcp"),
    "postgres": ("orders_postgres.backend:backend", "postgres"),
    "memory": ("orders_core.testing.memory:backend", None),
}


def open_backend(name: str, settings: Mapping[str, str]) -> Backend:
    """Build the named backend from ``settings``; ValueError says what is wrong or missing."""
    try:
        target, extra = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown store {name!r}: use one of {', '.join(BACKENDS)}") from None
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise ValueError(
            f"--store {name} needs the {extra} extra: pip install 'orders-core[{extra}]'"
        ) from exc
    factory: BackendFactory = getattr(module, attribute)
    return factory(settings)
