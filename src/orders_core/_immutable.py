"""``@immutable``: the value types every request creates, frozen for the type checker.

``@dataclass(frozen=True)`` guards each field at run time by setting it through
``object.__setattr__``: ~1 us per object against ~0.2 us for a plain slotted dataclass, and a
warm create builds seven (request, command, event, change, outbox entry, result, response):
~7 us of ~97 (bench/warm.py, docs/decisions/0007). ``@immutable`` gives type checkers the frozen
contract (mypy refuses an assignment to a field, as for a frozen dataclass) and keeps
equality and hashing as frozen dataclasses define them; at run time it is a plain slotted
dataclass, so code that sets a field anyway is not stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def immutable(*, eq: bool = True) -> Callable[[type[T]], type[T]]:
    def wrap(cls: type[T]) -> type[T]:
        # unsafe_hash=eq: the __hash__ a frozen dataclass with eq gets (and none without eq).
        return dataclass(slots=True, eq=eq, unsafe_hash=eq)(cls)

    return wrap
