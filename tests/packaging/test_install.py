"""The distribution ships four top-level packages, typed, from a wheel or an editable install.

Run by the ``packaging`` nox session, which sets ORDERS_INSTALL_MODE after installing.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from pathlib import Path

import pytest

MODE = os.environ.get("ORDERS_INSTALL_MODE")
PACKAGES = (
    "orders_core",
    "orders_local",
    "orders_aws",
    "orders_gcp",
    "orders_nats",
    "orders_postgres",
)
SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = pytest.mark.skipif(MODE is None, reason="run through `nox -s packaging`")


@pytest.mark.parametrize("name", PACKAGES)
def test_package_imports_from_the_install(name: str) -> None:
    module = importlib.import_module(name)
    location = Path(module.__file__ or "").resolve()
    if MODE == "wheel":
        assert SRC not in location.parents, f"{name} came from the source tree: {location}"
        assert "site-packages" in location.parts
    else:
        assert SRC in location.parents, f"editable {name} should come from src/: {location}"
    assert (location.parent / "py.typed").is_file()


def test_distribution_metadata_declares_the_extras() -> None:
    dist = metadata.distribution("orders-core")
    extras = set(dist.metadata.get_all("Provides-Extra") or [])
    assert {"aws", "gcp", "nats", "otel", "dev", "postgres"} <= extras
    requires = dist.requires or []
    assert any(r.startswith("python-dateutil") and "<3" in r for r in requires)


def test_the_console_page_ships_in_the_package() -> None:
    """Package data, not files beside the source: a wheel install serves the console too."""
    from importlib import resources

    static = resources.files("orders_local.console").joinpath("static")
    for name in ("index.html", "console.css", "console.js", "icon.svg"):
        assert static.joinpath(name).is_file(), name
    location = Path(str(static))
    assert (SRC in location.parents) is (MODE == "editable")
