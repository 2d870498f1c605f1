"""A thread-safe record of every call the stand-ins answered, in arrival order."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Call:
    seq: int
    """Arrival order across all stand-in servers (0, 1, 2, ...)."""
    service: str
    operation: str
    params: dict[str, Any]
    time: datetime
    """The emulated clock's time when the call arrived."""
    wall_time: float
    status: int
    """HTTP status returned."""
    error: str | None = None
    """The error code returned (e.g. `ThrottlingException`, `NoSuchKey`), None on success."""
    injected: bool = False
    """True when the error came from fault injection."""
    access_key: str | None = None
    """The access key id the request was signed with (SigV4 `Credential=`), None if unsigned:
    tells apart the processes of one test that were given different keys."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.status < 400

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else (self.error or str(self.status))

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "service": self.service,
            "operation": self.operation,
            "params": _json_safe(self.params),
            "time": self.time.isoformat(),
            "wall_time": self.wall_time,
            "status": self.status,
            "error": self.error,
            "injected": self.injected,
            "access_key": self.access_key,
        }


@dataclass
class RequestLog:
    """Calls recorded by the servers. Tests read it with `calls()` / `operations()`."""

    _calls: list[Call] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _since: int = 0
    """Calls that arrived before the last `clear()` are not recorded when they complete: a
    20 s SQS long poll of a stopped test's operator must not land in the next test's log."""

    _open: int = 0

    def ticket(self) -> tuple[int, float]:
        """Reserve the arrival number of a call that is starting now."""
        with self._lock:
            self._open += 1
            return next(self._counter), time.time()

    def in_flight(self) -> int:
        """Calls that have arrived and not yet completed (e.g. SQS long polls waiting)."""
        with self._lock:
            return self._open

    def record(self, call: Call) -> None:
        with self._lock:
            self._open -= 1
            if call.seq < self._since:
                return
            self._calls.append(call)
            self._lock.notify_all()

    def calls(self, service: str | None = None, operation: str | None = None) -> list[Call]:
        """Completed calls in arrival order, optionally filtered."""
        with self._lock:
            selected = sorted(self._calls, key=lambda c: c.seq)
        return [
            c
            for c in selected
            if (service is None or c.service == service)
            and (operation is None or c.operation == operation)
        ]

    def operations(self, service: str | None = None) -> list[str]:
        """Operation names in arrival order, e.g. `["ListHumanLoops", "DescribeHumanLoop"]`."""
        return [c.operation for c in self.calls(service)]

    def count(self, service: str | None = None, operation: str | None = None) -> int:
        return len(self.calls(service, operation))

    def clear(self) -> None:
        """Forget every call, and the ones still in flight when they complete."""
        with self._lock:
            self._calls.clear()
            self._since = next(self._counter)

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 5.0) -> list[Call]:
        """Block until `predicate(calls)` holds (for calls made by another thread)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                snapshot = sorted(self._calls, key=lambda c: c.seq)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("request log condition not met in time")
                self._lock.wait(remaining)

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    def to_json(self, service: str | None = None) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.calls(service)]


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def signing_access_key(authorization: str | None) -> str | None:
    """The access key id in a SigV4 Authorization header."""
    match = _CREDENTIAL.search(authorization or "")
    return match.group(1) if match else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
