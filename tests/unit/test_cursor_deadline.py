"""Pagination cursors are opaque and tamper-evident; deadlines refuse late work."""

import pytest

from orders_core.application import Deadline, decode_cursor, encode_cursor
from orders_core.errors import DeadlineExceeded, MalformedRequest

KEY = b"k" * 32


def test_cursors_round_trip() -> None:
    position = {"t": "2026-01-01T00:00:00+00:00", "id": "o-1"}
    assert decode_cursor(encode_cursor(position, KEY), KEY) == position


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: "e30" + c[3:],
        lambda c: c.replace(".", ""),
        lambda c: c + "." + c,
        lambda c: "x" * 2000,
        lambda c: "%%%.###",
    ],
)
def test_tampered_cursors_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    good = encode_cursor({"id": "o-1"}, KEY)
    with pytest.raises(MalformedRequest):
        decode_cursor(mangle(good), KEY)


def test_a_cursor_from_another_key_is_refused() -> None:
    with pytest.raises(MalformedRequest):
        decode_cursor(encode_cursor({"id": "o-1"}, b"other" * 8), KEY)


def test_deadlines() -> None:
    now = [100.0]
    deadline = Deadline.after(2.0, clock=lambda: now[0])
    deadline.check("work")
    assert deadline.remaining() == pytest.approx(2.0)
    now[0] = 101.5
    with pytest.raises(DeadlineExceeded):
        deadline.check("work", reserve=0.6)
    now[0] = 102.0
    with pytest.raises(DeadlineExceeded):
        deadline.check("work")
    assert Deadline.never().remaining() == float("inf")
