"""The Google Cloud CLI's Firestore and Pub/Sub emulators, as child processes on 127.0.0.1.

Each runs in a session of its own (the ``gcloud`` wrapper starts a JVM under it), so
stopping kills the whole process group; on Linux the wrapper also gets SIGKILL if the test
process dies first. A host already named in the environment (``FIRESTORE_EMULATOR_HOST``,
``PUBSUB_EMULATOR_HOST``) is used as it is and left running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

START_TIMEOUT: Final = 60.0
PR_SET_PDEATHSIG: Final = 1
COMMANDS: Final = {
    "firestore": ["emulators", "firestore", "start"],
    "pubsub": ["beta", "emulators", "pubsub", "start"],
}
ENV: Final = {"firestore": "FIRESTORE_EMULATOR_HOST", "pubsub": "PUBSUB_EMULATOR_HOST"}
READY: Final = {"firestore": b"Dev App Server is now running", "pubsub": b"Server started"}


def unavailable() -> str | None:
    """Why the emulators cannot run here, or None."""
    if shutil.which("gcloud") is None:
        return (
            "gcloud is not on PATH: the Firestore and Pub/Sub emulators come with the Google "
            "Cloud CLI (https://cloud.google.com/sdk/docs/install)"
        )
    if shutil.which("java") is None:
        return "java is not on PATH: the Google Cloud emulators need a Java runtime"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Emulator:
    """One emulator; :meth:`start` returns once its log says it serves."""

    def __init__(self, kind: str, log_path: Path) -> None:
        self.kind = kind
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = os.environ.get(ENV[kind], "")
        self.external = bool(self.host)

    def start(self) -> Emulator:
        if self.external:
            return self
        self.host = f"127.0.0.1:{_free_port()}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["gcloud", *COMMANDS[self.kind], f"--host-port={self.host}", "--quiet"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if READY[self.kind] in self.log_path.read_bytes():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        log_tail = self.log_path.read_bytes()[-2000:].decode(errors="replace")
        self.stop()
        raise RuntimeError(f"the {self.kind} emulator did not start:\n{log_tail}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
