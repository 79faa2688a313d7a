"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary
directory, started on 127.0.0.1 at a free port, password authentication on TCP.

The binaries are the system's (``pg_ctl`` on PATH, or Debian's /usr/lib/postgresql/*/bin),
else those the ``pgserver`` wheel bundles. PostgreSQL refuses to run as root, so under root
the server runs as the ``postgres`` user if there is one, else ``nobody``. Nothing listens
beyond loopback.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

USER: Final = "orders"
DATABASE: Final = "orders"


class Unavailable(RuntimeError):
    """No PostgreSQL could be started here; the message says why."""


def binaries(prefer: str = "") -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``prefer="pgserver"`` skips the system's (``ORDERS_TEST_POSTGRES=pgserver`` in tests).
    """
    candidates: list[str] = []
    if prefer != "pgserver":
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(os.path.dirname(os.path.realpath(on_path)))
        candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    # Located, not imported: importing pgserver warns about XDG_RUNTIME_DIR at import time.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(os.path.join(spec.submodule_search_locations[0], "pginstall", "bin"))
    for folder in candidates:
        if all(os.access(os.path.join(folder, b), os.X_OK) for b in ("initdb", "pg_ctl")):
            return Path(folder)
    raise Unavailable("no PostgreSQL binaries: install postgresql or pip install pgserver")


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise Unavailable("running as root, and neither a postgres nor a nobody user exists")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TestServer:
    """One PostgreSQL cluster. ``durable=False`` turns fsync off (tests); benchmarks keep
    PostgreSQL's defaults."""

    __test__ = False  # not a pytest class

    bin: Path = field(default_factory=binaries)
    durable: bool = False
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="orders-pg-")))
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    user: str | None = field(default_factory=_run_as)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 - PostgreSQL's own tools, our arguments
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.user,
            cwd=self.root,
            check=False,
        )
        if result.returncode != 0:
            raise Unavailable(f"{args[0]} failed: {result.stderr.strip() or result.stdout}")
        return result

    def start(self) -> TestServer:
        """initdb (once), then start; creates the ``orders`` database on the first start."""
        if self.user is not None:
            uid, gid = pwd.getpwnam(self.user)[2:4]
            os.chown(self.root, uid, gid)
        fresh = not self.data.exists()
        if fresh:
            pwfile = self.root / "pw"
            pwfile.write_text(self.password + "\n")
            if self.user is not None:
                os.chown(pwfile, uid, gid)
            self._run(
                "initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                "--locale=C", "--no-sync",
            )  # fmt: skip
            pwfile.unlink()
        self.port = self.port or _free_port()
        self._start()
        if fresh:
            import psycopg

            with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
                c.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def _start(self) -> None:
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            **self.settings,
        }
        flags = " ".join(f"-c {k}={v}" for k, v in options.items())
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
            "-t", "30", "-o", f"-p {self.port} {flags}", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions are terminated, nothing committed is lost;
        ``immediate``: no shutdown checkpoint, as a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port."""
        self.stop()
        time.sleep(down_for)
        self._start()

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def destroy(self) -> None:
        with contextlib.suppress(Unavailable, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
