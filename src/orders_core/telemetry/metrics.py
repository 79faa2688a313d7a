"""The instruments orders-core records, on the OpenTelemetry metrics API only."""

from __future__ import annotations

from typing import Any

from orders_core.telemetry._providers import METRICS_PROVIDER, TRACER_NAME


class Metrics:
    """The instruments orders-core records, on the OpenTelemetry metrics API.

    ==============================  =========  =============================================
    name                            kind       meaning
    ==============================  =========  =============================================
    ``orders.<metric>``             counter    successes of a command, by the ``metric`` the
                                               command table gives it (``orders.created``,
                                               ``.confirmed``, ``.cancelled``, ``.fulfilled``)
    ``orders.idempotent_replays``   counter    answers replayed from an idempotency record
    ``orders.conflicts``            counter    refused for state (``orders.conflict``: version,
                                               transition, precondition, key-reused)
    ``orders.command.duration``     histogram  seconds per command (``orders.command.type``)
    ``orders.relay.lag``            histogram  seconds from commit to publish
    ``orders.outbox.undelivered``   gauge      committed events not yet published (local)
    ==============================  =========  =============================================

    Instruments are created on first use through the API's proxy meter, so they bind to a
    MeterProvider a runtime installs later; with none, recording is skipped entirely.
    """

    def __init__(self) -> None:
        self._instruments: dict[str, Any] | None = None
        self._meter: Any = None

    def _get(self) -> dict[str, Any] | None:
        if self._instruments is None:
            if not METRICS_PROVIDER():
                return None
            from opentelemetry import metrics

            meter = metrics.get_meter(TRACER_NAME)
            self._meter = meter
            self._instruments = {}
            self._instruments["idempotent_replays"] = meter.create_counter(
                "orders.idempotent_replays", unit="{request}"
            )
            self._instruments["conflicts"] = meter.create_counter(
                "orders.conflicts", unit="{request}"
            )
            self._instruments["duration"] = meter.create_histogram(
                "orders.command.duration", unit="s"
            )
            self._instruments["relay_lag"] = meter.create_histogram("orders.relay.lag", unit="s")
        return self._instruments

    def command(
        self,
        command_type: str,
        seconds: float,
        *,
        counter: str | None,
        replayed: bool,
        conflict: str | None,
    ) -> None:
        """One command's figures; ``counter`` is its table ``metric`` when it succeeded."""
        instruments = self._get()
        if instruments is None:
            return
        instruments["duration"].record(seconds, {"orders.command.type": command_type})
        if replayed:
            instruments["idempotent_replays"].add(1, {"orders.command.type": command_type})
        elif counter is not None:
            name = f"counter:{counter}"
            if name not in instruments:  # created on first use: any table's metric counts
                instruments[name] = self._meter.create_counter(f"orders.{counter}", unit="{order}")
            instruments[name].add(1)
        if conflict is not None:
            instruments["conflicts"].add(1, {"orders.conflict": conflict})

    def relay_lag(self, seconds: float) -> None:
        instruments = self._get()
        if instruments is not None:
            instruments["relay_lag"].record(max(0.0, seconds))

    def observe_undelivered(self, count: Any) -> None:
        """Register ``count()`` as the undelivered-outbox gauge (local runtime)."""
        from opentelemetry import metrics
        from opentelemetry.metrics import CallbackOptions, Observation

        def callback(_: CallbackOptions) -> list[Observation]:
            return [Observation(int(count()))]

        metrics.get_meter(TRACER_NAME).create_observable_gauge(
            "orders.outbox.undelivered", callbacks=[callback], unit="{event}"
        )


METRICS = Metrics()
