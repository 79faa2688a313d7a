"""What a new user trips over first: the smoke script without ``orders-local`` on PATH, and
``orders-local events`` on a database in a directory they cannot write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orders_local.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "deploy" / "local" / "smoke.py"
pytestmark = pytest.mark.slow
NOBODY = 65534


def _without_orders_local_on_path() -> dict[str, str]:
    """The environment with no PATH entry that holds an ``orders-local``."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    kept = [e for e in entries if e and not (Path(e) / "orders-local").exists()]
    return {**os.environ, "PATH": os.pathsep.join(kept)}


def test_the_smoke_script_finds_orders_local_beside_its_python() -> None:
    """``.venv/bin/python deploy/local/smoke.py`` without activating the venv."""
    env = _without_orders_local_on_path()
    assert shutil.which("orders-local", path=env["PATH"]) is None
    assert Path(sys.executable).with_name("orders-local").exists()
    result = subprocess.run(
        [sys.executable, str(SMOKE)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok   start")


def test_the_smoke_script_says_what_is_missing(tmp_path: Path) -> None:
    """A Python that has no orders-core, and no orders-local anywhere: say so, not 'port 0'."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    result = subprocess.run(
        [str(bare / "bin" / "python"), str(SMOKE)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_without_orders_local_on_path(),
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "port 0" not in out
    assert "orders-local" in out
    assert "not found" in out
    assert "pip install" in out or "--orders-local" in out


def test_the_smoke_script_shows_why_the_server_did_not_start(tmp_path: Path) -> None:
    fake = tmp_path / "orders-local"
    fake.write_text("#!/bin/sh\necho 'orders-local: error: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(SMOKE), "--orders-local", str(fake)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FAIL start" in result.stdout
    assert "something broke" in result.stdout + result.stderr
    assert "port 0" not in result.stdout


def _as_a_user_who_cannot_write(directory: Path) -> list[str]:
    """A command prefix that runs the child as ``nobody`` when we are root (root writes
    anywhere); otherwise the directory's mode is enough."""
    directory.chmod(0o555)
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop privileges")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if not _runs(prefix):
        # A checkout under a 0700 directory (CI's mktemp -d) or pyenv's interpreter under
        # a 0700 /root hides them from nobody: a mount namespace of the child's own opens
        # the way (tests/namespaces.py), host modes untouched.
        outer = os.readlink("/proc/self/ns/mnt")
        unshare = ["unshare", "--mount", "--propagation", "private", "--fork", "--"]
        opener = str(Path(__file__).resolve().parents[1] / "namespaces.py")
        opened = [sys.executable, opener, str(NOBODY), str(NOBODY), outer]
        prefix = [*unshare, *opened, "--", *prefix]
        if shutil.which("unshare") is None or not _runs(prefix):
            pytest.skip("the interpreter or the checkout is not readable by an unprivileged user")
    return prefix


def _runs(prefix: list[str]) -> bool:
    """Whether the command prefix can start this interpreter and import the CLI."""
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import orders_local.cli"],
        capture_output=True,
        timeout=30,
        cwd="/",
    )
    return probe.returncode == 0


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's own tmp_path sits under a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="orders-newcomer-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(path)


def test_events_on_a_read_only_directory_is_a_clear_error(shared_dir: Path) -> None:
    data = shared_dir / "data"
    data.mkdir()
    SQLiteStore(data / "o.db").close()
    (data / "o.db").chmod(0o644)
    try:
        result = subprocess.run(
            [
                *_as_a_user_who_cannot_write(data),
                *(sys.executable, "-m", "orders_local.cli", "events", "--db", str(data / "o.db")),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
        )
    finally:
        data.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("orders-local: error: ")
    assert str(data / "o.db") in result.stderr
    assert "writ" in result.stderr  # says it needs write access, and where
