"""``orders_core.telemetry.setup.configure``: the standard OTEL_* variables decide what is
installed, and a traces-only set-up does not import the metrics SDK (a cold-start cost).

Providers are global to a process, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from opentelemetry import metrics, trace
from orders_core.telemetry import setup
installed = setup.configure("probe")
print(json.dumps({
    "installed": installed,
    "tracer_provider": type(trace.get_tracer_provider()).__module__,
    "meter_provider": type(metrics.get_meter_provider()).__module__,
    "metrics_sdk_imported": "opentelemetry.sdk.metrics" in sys.modules,
    "trace_sdk_imported": "opentelemetry.sdk.trace" in sys.modules,
}))
"""


def probe(**variables: str) -> tuple[dict[str, object], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, **variables},
        check=True,
    )
    return json.loads(result.stdout), result.stderr


def test_no_variables_leave_tracing_off_and_the_sdk_unimported() -> None:
    seen, _ = probe()
    assert seen["installed"] is False
    assert seen["trace_sdk_imported"] is False
    assert seen["metrics_sdk_imported"] is False


def test_traces_only_installs_the_tracer_and_never_imports_the_metrics_sdk() -> None:
    seen, _ = probe(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert seen["installed"] is True
    assert str(seen["tracer_provider"]).startswith("opentelemetry.sdk.trace")
    assert not str(seen["meter_provider"]).startswith("opentelemetry.sdk")
    assert seen["metrics_sdk_imported"] is False


def test_metrics_follow_the_traces_exporter_unless_told_otherwise() -> None:
    seen, _ = probe(OTEL_TRACES_EXPORTER="console")
    assert seen["installed"] is True
    assert str(seen["meter_provider"]).startswith("opentelemetry.sdk.metrics")


def test_an_otlp_endpoint_alone_turns_tracing_on() -> None:
    # Nothing is exported: no span is made. The endpoint is loopback and unused.
    seen, _ = probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_METRICS_EXPORTER="none")
    assert seen["installed"] is True
    assert str(seen["tracer_provider"]).startswith("opentelemetry.sdk.trace")


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    ],
    ids=["sdk-disabled", "exporter-none"],
)
def test_switched_off_means_off(variables: dict[str, str]) -> None:
    seen, _ = probe(**variables)
    assert seen["installed"] is False
    assert seen["trace_sdk_imported"] is False


def test_an_unknown_exporter_leaves_tracing_off_and_says_so() -> None:
    seen, err = probe(OTEL_TRACES_EXPORTER="carrier-pigeon")
    assert seen["installed"] is False
    assert not str(seen["tracer_provider"]).startswith("opentelemetry.sdk")
    assert "carrier-pigeon" in err
