"""``--cpu-affinity auto``: each server process runs on one CPU of its own.

A networked store's requests run in a thread pool, and those threads share one GIL. Left
to the scheduler, they move between CPUs, and every hand-off of the GIL then crosses
cores. Kept on one CPU, the same work costs less (docs/decisions/0022 has the figures).

Each process claims a CPU by holding an exclusive ``flock`` on a file named for it, in one
directory per user on this host. The kernel drops the lock when the process exits, so a
restarted worker takes the freed CPU. With more processes than CPUs, the extras stay
unpinned and say so. Opt-in: it helps only where the CPUs a process may use are its own
(one container per host, or a Kubernetes pod under the static CPU manager policy).
Elsewhere, two pinned servers on one host would pile onto the same CPUs.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("orders_local.affinity")

CHOICES = ["off", "auto"]
_held: list[int] = []  # the lock's descriptor lives as long as the process


def supported() -> bool:
    """Linux only: ``sched_setaffinity`` and ``/proc/self/task``."""
    return hasattr(os, "sched_setaffinity") and Path("/proc/self/task").is_dir()


def lock_dir() -> Path:
    """Per user, so another account's files can neither block nor redirect the claims."""
    return Path(tempfile.gettempdir()) / f"orders-local-cpus-{os.getuid()}"


def claim_cpu(directory: Path | None = None) -> int | None:
    """Pin every thread of this process (and the threads it starts later) to the first
    allowed CPU that no other process has claimed. Returns it, or None: nothing is free,
    or the lock directory is not ours. Then the process stays as it was."""
    directory = lock_dir() if directory is None else directory
    if not _own_directory(directory):
        log.warning("CPU affinity off: %s is not a directory of this user's", directory)
        return None
    for cpu in sorted(os.sched_getaffinity(0)):
        path = directory / f"cpu-{cpu}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:  # a symlink in its place (ELOOP), a directory: not claimable
            log.warning("CPU %d not claimable: %s: %s", cpu, path, exc.strerror)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held.append(fd)
        _pin(cpu)
        log.info("pinned to CPU %d", cpu)
        return cpu
    log.warning("CPU affinity off: every allowed CPU is claimed by another process")
    return None


def _own_directory(directory: Path) -> bool:
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        info = directory.lstat()  # a symlink planted in /tmp is not followed
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _pin(cpu: int) -> None:
    """Every thread now, not just the caller: ``sched_setaffinity(0)`` sets one thread's."""
    for name in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(name), {cpu})
        except OSError as exc:  # a thread that ended meanwhile
            if exc.errno != errno.ESRCH:
                raise
