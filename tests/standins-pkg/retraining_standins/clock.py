"""The stand-ins' notion of time: manual (tests move it) or real time at a chosen speed.

Every lifecycle in the emulator (training phases, endpoint updates, loop creation times) is
computed from `Clock.now()`, never from the wall clock, so a test can jump an hour ahead with
`clock.advance(3600)` and the demo can run SageMaker's minutes in seconds (`speed=60`).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    """The real current time, UTC, truncated to whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


class Clock:
    """A thread-safe clock.

    * Manual (`speed=None`, the default for tests): time stands still until `advance()`/`set()`.
    * Real time (`speed=1.0`, or faster, for the demo): time flows at `speed` emulated seconds
      per wall-clock second; `advance()` still jumps ahead.
    """

    def __init__(self, start: datetime | None = None, *, speed: float | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self._lock = threading.Lock()
        self._speed = speed
        self._base = _aware(start) if start is not None else utc_now()
        self._anchor = time.monotonic()

    @property
    def speed(self) -> float | None:
        """Emulated seconds per wall-clock second, or None when the clock is manual."""
        return self._speed

    @property
    def manual(self) -> bool:
        return self._speed is None

    def now(self) -> datetime:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        if self._speed is None:
            return self._base
        elapsed = (time.monotonic() - self._anchor) * self._speed
        return self._base + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> datetime:
        """Move time forward by `seconds` (emulated) and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._base = self._now_locked() + timedelta(seconds=seconds)
            self._anchor = time.monotonic()
            return self._base

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (forward only, like real time)."""
        when = _aware(when)
        with self._lock:
            if when < self._now_locked():
                raise ValueError(f"cannot move the clock back to {when.isoformat()}")
            self._base = when
            self._anchor = time.monotonic()
            return when

    def reset(self, start: datetime | None = None, *, speed: float | None = None) -> None:
        """Start over (tests call this between cases): new start time and speed."""
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        with self._lock:
            self._speed = speed
            self._base = _aware(start) if start is not None else utc_now()
            self._anchor = time.monotonic()

    def __repr__(self) -> str:
        mode = "manual" if self._speed is None else f"x{self._speed:g}"
        return f"Clock({self.now().isoformat()}, {mode})"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
