"""Order ids: time-ordered version-7 UUIDs (RFC 9562) as 32 hex digits."""

import os
import time
import uuid

import pytest

from orders_core.application import new_id


def test_order_ids_are_version_7_uuids_in_hex() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (len(value), parsed.hex, parsed.version) == (32, value, 7)
        assert parsed.variant == uuid.RFC_4122


def test_an_id_starts_with_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(value[:12], 16) <= after


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    earlier = [new_id() for _ in range(50)]
    time.sleep(0.002)
    later = [new_id() for _ in range(50)]
    assert max(earlier) < min(later)


def test_every_random_bit_varies() -> None:
    ids = [int(new_id(), 16) for _ in range(400)]
    varying = 0
    for bit in range(80):  # under the 48-bit timestamp
        if len({(value >> bit) & 1 for value in ids}) == 2:
            varying += 1
    assert varying == 74  # 80 less the 4 version bits and 2 variant bits


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_id()  # the parent holds random values for its next ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running pytest's teardown
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    parent = new_id()
    assert child[12:] != parent[12:]  # the random part, under the 48-bit timestamp
