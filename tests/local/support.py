"""A small HTTP client and an event collector for tests of the local runtime."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from orders_core.domain import DomainEvent


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive connection to the server; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("content-type", "application/json")
        self.conn.request(method, path, body=body, headers=hdrs)
        response = self.conn.getresponse()
        reply = Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
        if response.will_close:
            self.conn.close()
        return reply

    def close(self) -> None:
        self.conn.close()


class Collected:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: DomainEvent) -> None:
        with self._lock:
            self.events.append(event)

    def wait_for(
        self, predicate: Callable[[list[DomainEvent]], bool], timeout: float = 10
    ) -> list[DomainEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self.events):
                    return list(self.events)
            time.sleep(0.02)
        raise AssertionError(f"condition not met in {timeout}s; got {len(self.events)} events")


class ServerProcess:
    """``orders-local serve`` in a child process on a free loopback port."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        """``preexec`` runs in the child before the server starts (resource limits)."""
        import os
        import re
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orders_local.cli", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,  # tests use file sinks; an unread pipe could block
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            preexec_fn=preexec,
        )
        self.stderr_lines: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr_lines.append(line)
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                # Keep reading: a full pipe blocks the server's next log write, and with it
                # its event loop (a test that sent ~250 requests then waited for ever).
                self._drain = threading.Thread(
                    target=self._read_rest, args=(self.proc.stderr,), daemon=True
                )
                self._drain.start()
                return
        self.proc.kill()
        _, rest = self.proc.communicate(timeout=10)
        raise AssertionError(f"server did not start: {''.join(self.stderr_lines)}{rest}")

    def client(self) -> Client:
        return Client(self.port)

    def stop(self, signum: int | None = None, timeout: float = 20) -> tuple[int, str]:
        """Send ``signum`` (SIGTERM by default); return the exit code and all of stderr."""
        import signal as signals

        self.proc.send_signal(signum if signum is not None else signals.SIGTERM)
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.output(timeout)

    def output(self, timeout: float = 20) -> str:
        """All of stderr, once everyone holding it (the server, its relay) has closed it."""
        self._drain.join(timeout)
        if self._drain.is_alive():
            raise TimeoutError(f"stderr still open after {timeout} s")
        return "".join(self.stderr_lines)

    def _read_rest(self, stream: TextIO) -> None:
        for line in stream:
            self.stderr_lines.append(line)
        stream.close()
