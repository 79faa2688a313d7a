"""Deadlines: every command runs with a budget (a Lambda's remaining time, a server timeout)."""

from __future__ import annotations

import time
from collections.abc import Callable

from orders_core.errors import DeadlineExceeded


class Deadline:
    """A point on the monotonic clock after which work must not start."""

    __slots__ = ("_at", "_clock")

    def __init__(self, at: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock=clock)

    @classmethod
    def never(cls) -> Deadline:
        return cls(float("inf"))

    def remaining(self) -> float:
        """Seconds left; negative once passed."""
        return self._at - self._clock()

    def check(self, step: str, *, reserve: float = 0.0) -> None:
        """Refuse to begin ``step`` unless more than ``reserve`` seconds remain.

        Checking before a write, not after, is what keeps a timed-out command from committing
        an effect its caller has already given up on.
        """
        if self.remaining() <= reserve:
            raise DeadlineExceeded(f"not enough time left to {step}")
