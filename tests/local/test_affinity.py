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
import json, os, sys, tempfile, threading
from pathlib import Path
from orders_local import affinity

options = json.loads(sys.argv[1])
os.sched_setaffinity(0, options["allowed"])  # the CPUs this "container" may use

def affinity_of_new_thread():
    seen = []
    t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
    t.start(); t.join()
    return seen[0]

release = threading.Event(); seen = {}
def record(name, started):
    started.set(); release.wait(); seen[name] = sorted(os.sched_getaffinity(0))
def start(name):
    started = threading.Event()
    # daemon: a claim that raises must end this process (the test then reads its
    # traceback), not leave it waiting on release for ever
    threading.Thread(target=record, args=(name, started), daemon=True).start(); started.wait()

start("early")  # a thread that exists before the claim
if options.get("late"):  # a thread started while the claim walks the list of threads
    listdir = os.listdir
    def stale_listing(path):
        names = listdir(path)
        if path == "/proc/self/task" and "late" not in seen:
            seen["late"] = None
            start("late")  # after the listing was taken, so it is not in it
        return names
    affinity.os.listdir = stale_listing
if options.get("refuse_threads"):  # the kernel refuses to pin any thread but main
    setaffinity, main_tid = os.sched_setaffinity, threading.get_native_id()
    def refusing(tid, mask):
        if tid != main_tid and len(mask) == 1:
            raise OSError(22, "Invalid argument")
        setaffinity(tid, mask)
    affinity.os.sched_setaffinity = refusing
if options.get("no_tempdir"):
    def no_tempdir():
        raise FileNotFoundError("No usable temporary directory found")
    tempfile.gettempdir = no_tempdir
try:
    cpu = affinity.claim_cpu(Path(options["dir"]) if options["dir"] else None)
finally:
    release.set()
for t in threading.enumerate():
    if t is not threading.current_thread():
        t.join()
print(json.dumps({"cpu": cpu, "main": sorted(os.sched_getaffinity(0)), "early": seen["early"],
                  "late": seen.get("late"), "later": affinity_of_new_thread()}), flush=True)
sys.stdin.read()  # hold the claim until the test closes stdin
"""

# Two CPUs are enough to show every property, and keep the count of holders small on a
# machine with many.
ALLOWED = sorted(os.sched_getaffinity(0))[:2]


class Holder:
    def __init__(self, directory: Path | None, **options: object) -> None:
        options = {"dir": str(directory) if directory else None, "allowed": ALLOWED, **options}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "holder died"
        self.seen = json.loads(line)

    def release(self) -> str:
        _, err = self.proc.communicate(timeout=10)  # closes stdin: the holder exits
        return err

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=10)


@contextmanager
def holders(directory: Path | None, count: int, **options: object) -> Iterator[list[Holder]]:
    started: list[Holder] = []
    try:
        for _ in range(count):
            started.append(Holder(directory, **options))
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


def test_a_thread_started_during_the_claim_is_pinned_too(tmp_path: Path) -> None:
    with holders(tmp_path, 1, late=True) as (holder,):
        cpu = holder.seen["cpu"]
        assert holder.seen["late"] == holder.seen["early"] == holder.seen["main"] == [cpu]


@pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs to leave one out")
def test_only_the_cpus_a_process_may_use_are_claimed(tmp_path: Path) -> None:
    with holders(tmp_path, 1, allowed=[ALLOWED[1]]) as (holder,):
        assert holder.seen["cpu"] == ALLOWED[1]
    assert not (tmp_path / f"cpu-{ALLOWED[0]}.lock").exists()


def test_a_lock_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "cpus"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant or hold its lock files
    with holders(shared, 1) as (holder,):
        assert holder.seen["cpu"] is None
        assert holder.seen["main"] == ALLOWED
    assert list(shared.iterdir()) == []


def test_no_usable_temporary_directory_leaves_the_process_unpinned_and_says_so() -> None:
    holder = Holder(None, no_tempdir=True)
    assert holder.seen["cpu"] is None
    assert holder.seen["main"] == ALLOWED
    err = holder.release()
    assert holder.proc.returncode == 0
    assert "no temporary directory" in err
    assert "Traceback" not in err


def test_a_thread_the_kernel_will_not_pin_leaves_the_process_unpinned(tmp_path: Path) -> None:
    holder = Holder(tmp_path, refuse_threads=True)
    assert holder.seen["cpu"] is None
    assert holder.seen["main"] == holder.seen["early"] == ALLOWED  # the main thread undone
    with holders(tmp_path, 1) as (next_one,):
        assert next_one.seen["cpu"] == ALLOWED[0]  # the claim was given back
    err = holder.release()
    assert holder.proc.returncode == 0
    assert "could not be pinned" in err
    assert "Traceback" not in err
