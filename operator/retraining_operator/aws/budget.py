"""The operator's AWS call budget: at most `rate` HTTP sends per second, shared fairly.

Hooked on botocore's `before-send`, so retries spend tokens too: a throttled operator slows
down instead of hammering AWS in a hot loop.

**Fair share between namespaces** (Kubernetes' API Priority and Fairness and token-bucket
flow policing are the models). One bucket holds the tokens (`rate` per second, at most
`burst`); every namespace has *credit* that refills at its fair share, `rate / active
namespaces`, up to `burst`, and each call spends one.

- A namespace with credit (it asked for less than its fair share lately: a quiet one between
  its polls, a new one) is served first, most credit first, from any token in the bucket.
- A namespace without credit (it used its fair share, or its calls have waited for
  `BACKLOG_SECONDS` without a break: it is backlogged) is served in turn with the others
  without credit (the one served least recently first), and only from a full bucket: it still
  gets the whole `rate` alone, and its turns beside others, but the burst stays for the
  namespaces with credit.

So a quiet namespace's poll goes at once, with a burst, as it would alone, however many
namespaces are backlogged; backlogged namespaces share what is left evenly; no namespace
waits behind another's queue, no token is left unused while anyone waits, and the sustained
rate never passes `rate`. An optional hard cap per namespace (`share(key, rate)`,
`--namespace-calls-per-second`) limits one namespace further.

Waiting threads block on their own event: one wakes per token, not every waiter.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# A namespace whose calls have waited this long without a break has no credit.
BACKLOG_SECONDS = 1.0
# A namespace counts as active (for the fair share) this long after its last call.
ACTIVE_SECONDS = 10.0
# An idle namespace is forgotten after this long (it comes back with full credit).
FORGET_SECONDS = 100.0
_EPSILON = 1e-9


@dataclass
class _Waiter:
    key: str
    event: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Key:
    credit: float
    refilled: float
    served: float = float("-inf")  # when it last took a token
    seen: float = float("-inf")  # when it last asked
    waiters: deque[_Waiter] = field(default_factory=deque)
    backlogged_since: float | None = None  # since when it has had calls waiting


class CallBudget:
    """A token bucket at `rate` sends per second (at most `burst`), shared fairly by key."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        self._head: _Waiter | None = None  # the waiter that takes the next token
        self.waited_seconds = 0.0
        self._shares: dict[str, CallBudget] = {}

    def share(self, key: str, rate: float = 0.0) -> CallBudget:
        """The budget as `key` (a namespace) spends it: fair against the other keys, and at
        most `rate` calls per second when `rate > 0`. One handle per key."""
        with self._lock:
            found = self._shares.get(key)
            if found is None or found.rate != (rate if rate > 0 else self.rate):
                found = _Share(self, key, rate, clock=self._clock, sleep=self._sleep)
                self._shares[key] = found
            return found

    def acquire(self, key: str = "") -> None:
        """Take one token for `key`, waiting for it (and for `key`'s turn) when there is none."""
        if self.rate <= 0:
            return
        waiter = _Waiter(key)
        with self._lock:
            now = self._refill()
            state = self._key(key, now)
            if self._head is None and self._available(state, now) >= 1 - _EPSILON:
                self._take(state, now)
                return
            if not state.waiters:
                state.backlogged_since = now
            state.waiters.append(waiter)
            if self._head is None or self._choose(now) is waiter:
                # First in line, or more deserving than the head (which may be sleeping until
                # its token): this waiter goes now; the old head hands over when it wakes.
                self._head = waiter
                waiter.event.set()
        self._wait_turn(waiter)

    def _wait_turn(self, waiter: _Waiter) -> None:
        while True:
            waiter.event.wait()
            with self._lock:
                now = self._refill()
                chosen = self._choose(now)
                if chosen is not waiter:  # someone more deserving is waiting: hand over
                    waiter.event.clear()
                    self._head = chosen
                    if chosen is not None:
                        chosen.event.set()
                    continue
                state = self._keys[waiter.key]
                if self._available(state, now) >= 1 - _EPSILON:
                    state.waiters.popleft()
                    if not state.waiters:
                        state.backlogged_since = None
                    self._take(state, now)
                    self._head = self._choose(now)
                    if self._head is not None:
                        self._head.event.set()
                    return
                wait = self._wait(state, now)
            self.waited_seconds += wait
            self._sleep(wait)

    # -- under the lock ----------------------------------------------------------------

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return now

    def _key(self, key: str, now: float) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(credit=self.burst, refilled=now)
        state.seen = now
        return state

    def _fair(self, now: float) -> float:
        active = sum(1 for s in self._keys.values() if s.waiters or now - s.seen <= ACTIVE_SECONDS)
        return self.rate / max(1, active)

    def _credit(self, state: _Key, now: float) -> float:
        state.credit = min(self.burst, state.credit + (now - state.refilled) * self._fair(now))
        state.refilled = now
        if self._backlogged(state, now):
            state.credit = min(state.credit, 0.0)  # it asks for more than its share
        return state.credit

    def _backlogged(self, state: _Key, now: float) -> bool:
        since = state.backlogged_since
        return since is not None and now - since >= BACKLOG_SECONDS - _EPSILON

    def _available(self, state: _Key, now: float) -> float:
        """Tokens this key may take: any, with credit; without, only from a full bucket."""
        if self._credit(state, now) >= 1 - _EPSILON:
            return self._tokens
        return self._tokens - (self.burst - 1)

    def _wait(self, state: _Key, now: float) -> float:
        """How long until this key may take a token: a token in the bucket once it has credit
        again (refilling at its fair share), or a full bucket, whichever comes first."""
        to_token = max(0.0, 1 - self._tokens) / self.rate
        to_full = max(0.0, self.burst - self._tokens) / self.rate
        if self._backlogged(state, now):
            return max(to_full, 1e-3)
        to_credit = max(0.0, 1 - state.credit) / self._fair(now)
        return max(min(to_full, max(to_credit, to_token)), 1e-3)

    def _choose(self, now: float) -> _Waiter | None:
        """The first waiter of the waiting key with the most credit; when none has credit,
        of the waiting key served least recently."""
        best: tuple[bool, float] | None = None
        chosen: _Waiter | None = None
        for state in self._keys.values():
            if state.waiters:
                credit = self._credit(state, now)
                has_credit = credit >= 1 - _EPSILON
                rank = (not has_credit, -credit if has_credit else state.served)
                if best is None or rank < best:
                    best, chosen = rank, state.waiters[0]
        self._forget_idle(now)
        return chosen

    def _take(self, state: _Key, now: float) -> None:
        self._tokens = max(0.0, self._tokens - 1)
        state.credit = max(-self.burst, state.credit - 1)
        state.served = now

    def _forget_idle(self, now: float) -> None:
        """Keys idle for a while are forgotten: memory is bounded by the active keys."""
        if len(self._keys) <= 64:
            return
        for key, state in list(self._keys.items()):
            if not state.waiters and now - state.seen > FORGET_SECONDS:
                del self._keys[key]


class _Share(CallBudget):
    """One key's handle on the shared budget (and its own cap, when it has one)."""

    def __init__(
        self,
        parent: CallBudget,
        key: str,
        rate: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(rate if rate > 0 else parent.rate, clock=clock, sleep=sleep)
        self.parent = parent
        self.key = key
        self.capped = rate > 0

    def acquire(self, key: str = "") -> None:
        if self.capped:
            super().acquire(self.key)
        self.parent.acquire(self.key)
