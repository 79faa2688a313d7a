"""OpenTelemetry SDK set-up from ``OTEL_*`` variables, for runtimes (the ``otel`` extra).

The core never imports this module, nor does ``orders_core.telemetry`` itself.

Runtimes' composition roots (``orders-local serve``, the Lambda bootstrap) call
:func:`configure` once. It follows the standard variables and stays a no-op, importing
nothing heavy, unless tracing was asked for:

=================================  ==========================================================
``OTEL_SDK_DISABLED``              ``true``: never configure
``OTEL_TRACES_EXPORTER``           ``otlp`` (OTLP over HTTP), ``console``, or ``none``
``OTEL_METRICS_EXPORTER``          ``otlp``, ``console`` or ``none`` (default: as traces)
``OTEL_EXPORTER_OTLP_ENDPOINT``    collector base URL; setting it alone turns OTLP on
``OTEL_SERVICE_NAME``              ``service.name`` (default: the runtime's name)
``OTEL_RESOURCE_ATTRIBUTES``       extra resource attributes (the SDK reads it)
=================================  ==========================================================

Spans are exported in batches; short-lived processes (Lambda) call :func:`flush` before the
invocation returns, because a frozen environment exports nothing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from orders_core.telemetry._providers import sdk_installed_now

log = logging.getLogger("orders_core.sdk")  # the name its warnings have always had

_PROVIDERS: list[Any] = []


def wanted(env: dict[str, str] | None = None) -> str | None:
    """The traces exporter asked for by the environment, or None for "leave tracing off"."""
    env = dict(os.environ if env is None else env)
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return None if exporter == "none" else exporter
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return None


def configure(service_name: str, *, batch: bool = True) -> bool:
    """Install a TracerProvider (and MeterProvider) from the environment; True if it did."""
    exporter_name = wanted()
    if exporter_name is None or _PROVIDERS:
        return bool(_PROVIDERS)
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("OTEL_* asks for tracing but the otel extra is not installed")
        return False

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    span_exporter: Any
    if exporter_name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        span_exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    else:
        log.warning("unknown OTEL_TRACES_EXPORTER %r: tracing stays off", exporter_name)
        return False
    tracer_provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(span_exporter) if batch else SimpleSpanProcessor(span_exporter)
    tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    _PROVIDERS.append(tracer_provider)
    sdk_installed_now()

    metrics_name = os.environ.get("OTEL_METRICS_EXPORTER", exporter_name).strip().lower()
    metric_exporter: Any = None
    if metrics_name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        metric_exporter = ConsoleMetricExporter()
    elif metrics_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        metric_exporter = OTLPMetricExporter()
    if metric_exporter is not None:
        # Only here: the metrics SDK is the largest import of the set-up, and
        # OTEL_METRICS_EXPORTER=none (traces only) should not pay for it at a cold start.
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)]
        )
        metrics.set_meter_provider(meter_provider)
        _PROVIDERS.append(meter_provider)
    return True


def flush(timeout_ms: int = 2000) -> None:
    """Export what is buffered (end of a Lambda invocation)."""
    for provider in _PROVIDERS:
        provider.force_flush(timeout_ms)
