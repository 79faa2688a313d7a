"""Import costs stay where they belong: the core loads nothing of Google Cloud, and
``import orders_gcp`` loads no SDK until a store, a publisher or an app is built."""

from __future__ import annotations

from tests.unit.test_imports import loaded_after


def test_the_core_loads_nothing_of_google_cloud() -> None:
    modules = loaded_after("import orders_core, orders_core.application, orders_core.edges.asgi")
    assert not {m for m in modules if m.startswith(("google", "grpc", "orders_gcp"))}


def test_the_adapters_modules_load_no_sdk_until_used() -> None:
    modules = loaded_after(
        "import orders_gcp, orders_gcp.firestore, orders_gcp.pubsub, orders_gcp.push_app, "
        "orders_gcp.cloud_logging"
    )
    assert "orders_gcp.push_app" in modules
    assert not {m for m in modules if m.startswith(("google", "grpc"))}
