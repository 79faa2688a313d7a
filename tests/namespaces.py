"""Run a command as another user in a mount namespace of its own, where the directories on
the way to this interpreter and checkout are searchable for that user (real root only).

A 0700 ``/root`` above pyenv's interpreter, or a ``mktemp -d`` above CI's checkout, hides
them from an unprivileged user: each such directory gets a tmpfs (mode 0755) holding only
the entries needed, the originals bound back at the same paths. No mode changes on the
host; the mounts vanish with the namespace.

    unshare --mount --propagation private --fork -- \
        python tests/namespaces.py UID GID OUTER_NS -- COMMAND...

``OUTER_NS`` is the caller's ``/proc/self/ns/mnt``: the module refuses to mount anything in
it. tests/deploy/container_image.py builds its read-only root on the same functions.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOSYMFOLLOW = 0x1, 0x2, 0x4, 0x8, 0x100
MS_REMOUNT, MS_BIND, MS_REC = 0x20, 0x1000, 0x4000


def mount_syscall(
    source: str | None, target: str, fstype: str | None, flags: int, data: str = ""
) -> None:
    """mount(2) itself: util-linux's mount(8) would resolve /proc/self/fd/N to the path it
    names, which by then a tmpfs covers."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    encoded = [None if v is None else v.encode() for v in (source, target, fstype)]
    if libc.mount(*encoded, flags, data.encode() or None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {source} on {target}: {os.strerror(code)}")


def _steps(path: str) -> Iterator[tuple[str, str]]:
    """(directory, entry) for each lookup the kernel makes to resolve ``path``, following
    symlinks, up to the first entry that does not exist."""
    parts = list(Path(path).parts[1:])
    current, hops = "/", 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        if not os.path.lexists(candidate):
            return
        yield current, name
        if os.path.islink(candidate):
            hops += 1
            assert hops < 40, f"symlink loop resolving {path}"
            target = Path(os.readlink(candidate))
            current = "/" if target.is_absolute() else current
            parts[:0] = list(target.parts[1:] if target.is_absolute() else target.parts)
        else:
            current = candidate


def _searchable(directory: str, uid: int, gid: int) -> bool:
    """Whether uid:gid (no other groups) may look up entries in ``directory``."""
    info = os.stat(directory)
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _closed_steps(paths: Iterable[str], uid: int, gid: int) -> dict[str, set[str]]:
    """Each directory uid:gid cannot search on the way to ``paths`` (a 0700 /root above
    pyenv's interpreter, a ``mktemp -d`` above CI's checkout), with the entries needed."""
    closed: dict[str, set[str]] = {}
    for path in paths:
        for directory, name in _steps(os.path.abspath(path)):
            if not _searchable(directory, uid, gid):
                closed.setdefault(directory, set()).add(name)
    return closed


def _open_up(directory: str, names: set[str]) -> None:
    """A tmpfs (mode 0755) over ``directory`` holding only ``names``, each the original bound
    back through a descriptor opened before the tmpfs covered it: the same absolute paths
    resolve for the image user, the directory's other entries stay out of sight, and no
    mode changes on the host."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        kinds = {n: os.stat(n, dir_fd=fd, follow_symlinks=False).st_mode for n in names}
        links = {n: os.readlink(n, dir_fd=fd) for n in names if stat.S_ISLNK(kinds[n])}
        mount_syscall("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for name in sorted(names):
            target = os.path.join(directory, name)
            if name in links:
                os.symlink(links[name], target)
                continue
            if stat.S_ISDIR(kinds[name]):
                os.mkdir(target)
            else:
                Path(target).touch()
            mount_syscall(f"/proc/self/fd/{fd}/{name}", target, None, MS_BIND | MS_REC)
    finally:
        os.close(fd)


def open_up_for(uid: int, gid: int, outer_namespace: str) -> dict[str, list[str]]:
    """Makes this interpreter, its installation, its import path and the checkout
    searchable for uid:gid at their own paths; returns the directories opened up, with the
    entries kept in each."""
    here = os.readlink("/proc/self/ns/mnt")
    if here == outer_namespace:
        raise SystemExit(f"refusing to mount in {here}: run this through unshare --mount")
    keep = [sys.executable, sys.prefix, sys.base_prefix, str(ROOT), *filter(None, sys.path)]
    closed = _closed_steps(keep, uid, gid)
    for directory in sorted(closed, key=lambda d: len(Path(d).parts)):  # outermost first
        _open_up(directory, closed[directory])
    return {directory: sorted(names) for directory, names in sorted(closed.items())}


if __name__ == "__main__":
    uid, gid, outer, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit("usage: python tests/namespaces.py UID GID OUTER_NS -- COMMAND...")
    open_up_for(int(uid), int(gid), outer)
    os.execvp(command[0], command)
