"""``--cpu-affinity auto``: each process claims a CPU of its own, every thread follows, a dead
holder's CPU is free again, and what cannot be claimed leaves the process as it was.

Claims pin the whole process, so each runs in a child, never in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orders_local import affinity

pytestmark = pytest.mark.skipif(
    not affinity.supported(), reason="CPU affinity is Linux-only (sched_setaffinity)"
)

HOLDER = """
import json, os, sys, threading
from pathlib import Path
from orders_local.affinity import claim_cpu

def affinity_of_new_thread():
    seen = []
    t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
    t.start(); t.join()
    return seen[0]

before = threading.Event(); release = threading.Event(); seen = {}
def early():  # a thread that exists before the claim
    before.set(); release.wait(); seen["early"] = sorted(os.sched_getaffinity(0))
t = threading.Thread(target=early); t.start(); before.wait()
cpu = claim_cpu(Path(sys.argv[1]))
release.set(); t.join()
print(json.dumps({"cpu": cpu, "main": sorted(os.sched_getaffinity(0)),
                  "early": seen["early"], "later": affinity_of_new_thread()}), flush=True)
sys.stdin.read()  # hold the claim until the test closes stdin
"""

ALLOWED = sorted(os.sched_getaffinity(0))


class Holder:
    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "holder died"
        self.seen = json.loads(line)

    def release(self) -> None:
        self.proc.communicate(timeout=10)  # closes stdin (the holder exits), reads the rest

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=10)


@contextmanager
def holders(directory: Path, count: int) -> Iterator[list[Holder]]:
    started: list[Holder] = []
    try:
        for _ in range(count):
            started.append(Holder(directory))
        yield started
    finally:
        for holder in started:
            if holder.proc.poll() is None:
                holder.release()


def test_a_claim_pins_every_thread_to_one_allowed_cpu(tmp_path: Path) -> None:
    with holders(tmp_path / "cpus", 1) as (holder,):
        cpu = holder.seen["cpu"]
        assert cpu == ALLOWED[0]
        # the thread that already ran, the main thread, and one started afterwards
        assert holder.seen["early"] == holder.seen["main"] == holder.seen["later"] == [cpu]
    assert oct((tmp_path / "cpus").stat().st_mode & 0o777) == "0o700"


def test_processes_take_distinct_cpus_and_one_too_many_stays_unpinned(tmp_path: Path) -> None:
    with holders(tmp_path, len(ALLOWED) + 1) as started:
        cpus = [h.seen["cpu"] for h in started]
        assert cpus[:-1] == ALLOWED  # each allowed CPU once
        extra = started[-1].seen
        assert extra["cpu"] is None
        assert extra["main"] == extra["later"] == ALLOWED  # left as it was


def test_a_killed_holders_cpu_is_free_again(tmp_path: Path) -> None:
    with holders(tmp_path, len(ALLOWED)) as started:
        victim = started[-1]
        freed = victim.seen["cpu"]
        victim.kill()  # no clean-up runs: the kernel drops the flock with the process
        with holders(tmp_path, 1) as (next_one,):
            assert next_one.seen["cpu"] == freed


def test_a_symlinked_lock_directory_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "cpus"
    link.symlink_to(elsewhere)  # planted where the locks would go
    with holders(link, 1) as (holder,):
        assert holder.seen["cpu"] is None
        assert holder.seen["main"] == ALLOWED
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_in_place_of_a_lock_file_is_skipped(tmp_path: Path) -> None:
    target = tmp_path / "target"
    locks = tmp_path / "cpus"
    locks.mkdir(mode=0o700)
    (locks / f"cpu-{ALLOWED[0]}.lock").symlink_to(target)
    with holders(locks, 1) as (holder,):
        expected = ALLOWED[1] if len(ALLOWED) > 1 else None
        assert holder.seen["cpu"] == expected
    assert not target.exists()  # O_NOFOLLOW: nothing created through the link
