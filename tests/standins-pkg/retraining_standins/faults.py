"""Faults on demand: latency, throttling and server errors, per service and operation.

A `FaultRule` matches calls by service (`sagemaker`, `sagemaker-a2i-runtime`, `s3`, `sts`,
`cloudwatch`, or `*`) and operation (an fnmatch pattern such as `Describe*`). Every matching
rule adds its latency; the first rule whose dice roll hits decides the error. Draws come from
one seeded `random.Random`, so a sequential test sees the same faults on every run.

What a throttle looks like on the wire depends on the service (the servers render it):
SageMaker `ThrottlingException` (400), A2I `ThrottlingException` (429), S3 `SlowDown` (503),
STS/CloudWatch `Throttling` (400). A server error is `InternalFailure` (500) or
`ServiceUnavailable` (503) in the service's own error shape. A rule may instead name any
error `code`/`status` (e.g. `ResourceLimitExceeded`, 400) to inject a semantic error.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

FaultKind = Literal["throttle", "error"]

SERVICES = ("sagemaker", "sagemaker-a2i-runtime", "s3", "sts", "cloudwatch")


@dataclass(frozen=True)
class FaultRule:
    service: str = "*"
    operation: str = "*"
    latency: float = 0.0
    """Seconds of real (wall-clock) delay added before the call is answered."""
    throttle_rate: float = 0.0
    """Probability in [0, 1] that the call is throttled."""
    error_rate: float = 0.0
    """Probability in [0, 1] that the call fails with a server error (or `code`)."""
    status: int = 500
    """HTTP status of an injected error: 500 or 503 (or 4xx together with `code`)."""
    code: str | None = None
    """Error code to inject instead of the service's default 5xx code."""
    message: str | None = None
    times: int | None = None
    """Inject at most this many errors, then the rule only adds latency. None: unlimited."""

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "error_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status")

    def matches(self, service: str, operation: str) -> bool:
        return (self.service in ("*", service)) and fnmatch.fnmatchcase(operation, self.operation)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class FaultDecision:
    latency: float = 0.0
    kind: FaultKind | None = None
    status: int = 500
    code: str | None = None
    message: str | None = None

    @property
    def fails(self) -> bool:
        return self.kind is not None


NO_FAULT = FaultDecision()


@dataclass
class _Slot:
    rule: FaultRule
    injected: int = 0


@dataclass
class Faults:
    """The live fault configuration shared by all stand-in servers (thread-safe)."""

    seed: int = 0
    _slots: list[_Slot] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- configuration -------------------------------------------------------------------
    def add(self, rule: FaultRule | None = None, /, **fields: Any) -> FaultRule:
        """Add a rule (`faults.add(FaultRule(...))` or `faults.add(service="s3", ...)`)."""
        if rule is None:
            rule = FaultRule(**fields)
        elif fields:
            rule = replace(rule, **fields)
        with self._lock:
            self._slots.append(_Slot(rule))
        return rule

    def throttle(
        self, service: str, operation: str = "*", rate: float = 1.0, **kw: Any
    ) -> FaultRule:
        return self.add(FaultRule(service=service, operation=operation, throttle_rate=rate, **kw))

    def fail(self, service: str, operation: str = "*", rate: float = 1.0, **kw: Any) -> FaultRule:
        return self.add(FaultRule(service=service, operation=operation, error_rate=rate, **kw))

    def delay(self, service: str, operation: str = "*", seconds: float = 0.1) -> FaultRule:
        return self.add(FaultRule(service=service, operation=operation, latency=seconds))

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._slots = [s for s in self._slots if s.rule is not rule]

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def reset(self, seed: int = 0) -> None:
        """No rules and a fresh random sequence."""
        with self._lock:
            self._slots.clear()
            self.seed = seed
            self._rng = random.Random(seed)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [s.rule for s in self._slots]

    def injected(self) -> int:
        """How many errors were injected since the rules were set."""
        with self._lock:
            return sum(s.injected for s in self._slots)

    def configure(self, rules: list[FaultRule], seed: int | None = None) -> None:
        """Replace every rule at once (and optionally reseed)."""
        with self._lock:
            self._slots = [_Slot(r) for r in rules]
            if seed is not None:
                self.seed = seed
                self._rng = random.Random(seed)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self.seed,
                "rules": [s.rule.to_json() for s in self._slots],
                "injected": sum(s.injected for s in self._slots),
            }

    # -- the hot path --------------------------------------------------------------------
    def decide(self, service: str, operation: str) -> FaultDecision:
        """Roll the dice for one incoming call."""
        with self._lock:
            if not self._slots:
                return NO_FAULT
            latency = 0.0
            decision: FaultDecision | None = None
            for slot in self._slots:
                rule = slot.rule
                if not rule.matches(service, operation):
                    continue
                latency += rule.latency
                exhausted = rule.times is not None and slot.injected >= rule.times
                if rule.throttle_rate > 0:
                    hit = self._rng.random() < rule.throttle_rate
                    if hit and decision is None and not exhausted:
                        slot.injected += 1
                        decision = FaultDecision(kind="throttle", status=0, message=rule.message)
                        continue
                if rule.error_rate > 0:
                    hit = self._rng.random() < rule.error_rate
                    if hit and decision is None and not exhausted:
                        slot.injected += 1
                        decision = FaultDecision(
                            kind="error", status=rule.status, code=rule.code, message=rule.message
                        )
            if decision is None:
                return FaultDecision(latency=latency) if latency else NO_FAULT
            return replace(decision, latency=latency)
