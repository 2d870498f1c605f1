"""Fencing: a process that does not hold leadership makes no write, to AWS or Kubernetes.

Leader election (`leader.py`) installs `holds`; every AWS request and every status write
(`kube.py`) checks it first. The AWS gateways know nothing of leadership: the operator
builds its client pool with `check` as the pool's guard (`handlers.py`), which every client
of the pool runs before it sends a request (a botocore `before-send` hook, retries too).

The check is local time only: a leader that was paused (SIGSTOP, a frozen VM, a long GC)
and resumes after its lease ran out sees at once that it may no longer hold it, before any
thread of it sends anything; it learns who holds the lease later, from the API server.
"""

from __future__ import annotations

from collections.abc import Callable

from retraining_operator.errors import RetryLater


class NotLeader(RetryLater):
    """This process may not act now (standby, or a leader whose lease may have expired)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} refused: this operator does not hold the leader lease", 2.0)
        self.reason = "NotLeader"


def _always() -> bool:
    return True


_holds: Callable[[], bool] = _always


def install(holds: Callable[[], bool]) -> None:
    """From now on, writes go out only while `holds()` is true."""
    global _holds
    _holds = holds


def reset() -> None:
    """No fencing (a single operator without leader election)."""
    install(_always)


def check(what: str) -> None:
    """Raise `NotLeader` unless this process may write now."""
    if not _holds():
        raise NotLeader(what)
