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
    """Per user, so another account's files can neither block nor redirect the claims.

    Raises FileNotFoundError when no temporary directory is usable (``tempfile``'s own)."""
    return Path(tempfile.gettempdir()) / f"orders-local-cpus-{os.getuid()}"


def claim_cpu(directory: Path | None = None) -> int | None:
    """Pin every thread of this process (and the threads it starts later) to the first
    allowed CPU that no other process has claimed. Returns it, or None: nothing is free,
    or there is no lock directory this user alone controls. Then the process stays as it
    was: affinity is an optimisation, never a reason not to serve."""
    try:
        directory = lock_dir() if directory is None else directory
    except OSError as exc:  # no usable temporary directory at all
        log.warning("CPU affinity off: no temporary directory for the CPU claims: %s", exc)
        return None
    dir_fd = _open_own_directory(directory)
    if dir_fd is None:
        log.warning(
            "CPU affinity off: %s is not a directory that only this user can write", directory
        )
        return None
    try:
        cpu = _claim_first_free(dir_fd, directory)
    finally:
        os.close(dir_fd)
    if cpu is None:
        log.warning("CPU affinity off: every allowed CPU is claimed by another process")
        return None
    allowed = os.sched_getaffinity(0)
    try:
        _pin(cpu)
    except OSError as exc:  # EINVAL from a cpuset, EBUSY for a deadline thread: unpin all
        _pin(allowed, strict=False)
        os.close(_held.pop())  # give the CPU back: this process does not run on it
        log.warning("CPU affinity off: a thread could not be pinned: %s", exc.strerror)
        return None
    log.info("pinned to CPU %d", cpu)
    return cpu


def _claim_first_free(dir_fd: int, directory: Path) -> int | None:
    for cpu in sorted(os.sched_getaffinity(0)):
        name = f"cpu-{cpu}.lock"
        try:  # relative to the directory we checked, so a swapped path cannot redirect it
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        except OSError as exc:  # a symlink in its place (ELOOP), a directory: not claimable
            log.warning("CPU %d not claimable: %s: %s", cpu, directory / name, exc.strerror)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process holds it
            os.close(fd)
            continue
        except OSError as exc:  # ENOLCK on some network file systems: skip, do not crash
            log.warning("CPU %d not claimable: %s: %s", cpu, directory / name, exc.strerror)
            os.close(fd)
            continue
        _held.append(fd)
        return cpu
    return None


def _open_own_directory(directory: Path) -> int | None:
    """A descriptor for the lock directory if it is a real directory (not a symlink) that
    this user owns and nobody else can write, else None."""
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # ELOOP: a symlink planted in /tmp is not followed
        return None
    info = os.fstat(fd)
    writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or writable_by_others:
        os.close(fd)
        return None
    return fd


def _pin(cpus: int | set[int], *, strict: bool = True) -> None:
    """Every thread, not just the caller: ``sched_setaffinity(0)`` sets one thread's. A
    thread started while we walk the list may be missed (it inherits its creator's mask),
    so the walk repeats until a pass finds no thread it has not pinned. ``strict``: raise
    what the kernel refuses (a thread that ended meanwhile is never an error)."""
    mask = {cpus} if isinstance(cpus, int) else cpus
    pinned: set[int] = set()
    while True:
        tids = {int(name) for name in os.listdir("/proc/self/task")} - pinned
        if not tids:
            return
        for tid in tids:
            try:
                os.sched_setaffinity(tid, mask)
            except OSError as exc:
                if exc.errno != errno.ESRCH and strict:
                    raise
        pinned |= tids
