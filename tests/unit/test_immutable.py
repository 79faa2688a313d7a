"""``@immutable`` types: frozen for the type checker, equal and hashable like frozen dataclasses."""

from __future__ import annotations

import textwrap
from pathlib import Path

from orders_core._immutable import immutable
from orders_core.application import CommandResult
from orders_core.edges.http import HttpResponse


def test_equal_values_are_equal_and_hash_alike() -> None:
    a = CommandResult(201, b"{}", "o-1", 1)
    b = CommandResult(201, b"{}", "o-1", 1)
    assert a == b
    assert hash(a) == hash(b)
    assert a != CommandResult(201, b"{}", "o-1", 2)
    assert {a, b} == {a}


def test_a_value_without_eq_compares_and_hashes_by_identity() -> None:
    @immutable(eq=False)
    class Point:
        x: int

    p = Point(1)
    assert p == p
    assert p != Point(1)
    assert len({p, Point(1)}) == 2


def test_values_keep_slots() -> None:
    assert not hasattr(HttpResponse(200, {}, b""), "__dict__")


def test_the_type_checker_refuses_assigning_a_field(tmp_path: Path) -> None:
    from mypy import api

    source = tmp_path / "assign.py"
    source.write_text(
        textwrap.dedent(
            """
            from orders_core.application import CommandResult

            result = CommandResult(201, b"{}", "o-1", 1)
            result.status = 200
            """
        )
    )
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path), str(source)]
    )
    assert status == 1
    assert 'Property "status" defined in "CommandResult" is read-only' in out
