"""Whether a runtime installed an OpenTelemetry SDK: the question every hot path asks first."""

from __future__ import annotations

import sys
import time
from typing import Final

TRACER_NAME: Final = "orders_core"
_RECHECK_SECONDS: Final = 1.0


def _installed(provider: object) -> bool:
    """A provider someone installed (an SDK's), not the API's own proxy or no-op one."""
    return not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


class ProviderCheck:
    """Whether someone installed an SDK provider behind one OpenTelemetry API module.

    The API's lookup reads the environment on every call, and a command asks several times:
    asking it each time was a visible share of a warm invocation (docs/decisions/0007). A
    yes is final (providers cannot be uninstalled); a no is re-checked at most once a
    second, or at once after :meth:`recheck`. Nobody can have installed a provider without
    importing the API first, so while the module is not loaded the answer is no, and it
    stays unloaded.
    """

    def __init__(self, module: str, getter: str) -> None:
        self.module = module
        self.getter = getter
        self.installed = False
        self._checked = float("-inf")

    def __call__(self) -> bool:
        if self.installed:
            return True
        now = time.monotonic()
        if now - self._checked >= _RECHECK_SECONDS:
            self._checked = now
            api = sys.modules.get(self.module)
            self.installed = api is not None and _installed(getattr(api, self.getter)())
        return self.installed

    def recheck(self) -> None:
        self._checked = float("-inf")


TRACES: Final = ProviderCheck("opentelemetry.trace", "get_tracer_provider")
METRICS_PROVIDER: Final = ProviderCheck("opentelemetry.metrics", "get_meter_provider")


def sdk_configured() -> bool:
    """True once a runtime has installed a real TracerProvider (the API's default is a proxy)."""
    return TRACES()


def sdk_installed_now() -> None:
    """Tell :func:`sdk_configured` a provider was just installed (no waiting for a re-check)."""
    TRACES.recheck()
    METRICS_PROVIDER.recheck()
