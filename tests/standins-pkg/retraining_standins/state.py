"""State shared by the emulated services: the lock, the clock, identity and side channels."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from retraining_standins.clock import Clock

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account: ARNs line up with S3/CloudWatch
DEFAULT_REGION = "us-east-1"


@dataclass
class Durations:
    """How long (in emulated seconds) each transition takes. Tests may change them freely."""

    training_starting: float = 60.0
    training_downloading: float = 60.0
    training_training: float = 300.0
    training_uploading: float = 60.0
    training_stopping: float = 30.0
    spot_billable_fraction: float = 0.3
    """Spot jobs bill this fraction of their training time (the 70 % saving AWS advertises)."""
    endpoint_creating: float = 300.0
    endpoint_updating: float = 300.0
    """Provisioning the new fleet, before traffic shifts and baking starts."""
    transform: float = 60.0
    """A Batch Transform job, from creation to Completed (or Failed)."""
    transform_stopping: float = 10.0
    endpoint_rolling_back: float = 120.0
    endpoint_weights: float = 30.0
    endpoint_deleting: float = 30.0
    tuning_stopping: float = 30.0
    registry_group: float = 5.0
    """A new Model Package Group: Pending, then Completed."""
    registry_package: float = 10.0
    """A new Model Package: Pending, InProgress, then Completed."""
    experiment_creating: float = 60.0
    """A new inference experiment: Creating, then Created until its scheduled start. Deploying
    and removing the shadow variant are endpoint updates (`endpoint_updating` each)."""

    def training_total(self) -> float:
        return (
            self.training_starting
            + self.training_downloading
            + self.training_training
            + self.training_uploading
        )


class ObjectStore(Protocol):
    """Where the emulator reads and writes S3 objects (the S3 stand-in, or memory)."""

    def put(self, uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """Write an object."""

    def get(self, uri: str) -> bytes | None:
        """Read an object, None if absent."""

    def exists(self, uri: str) -> bool:
        """True if the object exists."""

    def exists_prefix(self, uri: str) -> bool:
        """True if at least one object has this key prefix."""

    def list_keys(self, uri: str) -> list[str]:
        """The keys of every object under this key prefix (`s3://bucket/prefix`), sorted."""


class LoopEventSink(Protocol):
    """Where A2I publishes a status-change event when a human loop ends (events.EventRelay)."""

    def loop_ended(self, loop: Any) -> None: ...


class MetricSink(Protocol):
    """Where the emulator publishes CloudWatch metrics (PutMetricData members)."""

    def put(self, namespace: str, data: list[dict[str, Any]]) -> None: ...


class AlarmSource(Protocol):
    """CloudWatch alarm states, for endpoint auto-rollback."""

    def states(self, names: Sequence[str]) -> dict[str, str]:
        """`{alarm name: OK | ALARM | INSUFFICIENT_DATA}` for the alarms that exist."""


@dataclass
class EmulatorState:
    clock: Clock
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = DEFAULT_REGION
    durations: Durations = field(default_factory=Durations)
    store: ObjectStore | None = None
    alarms: AlarmSource | None = None
    metrics: MetricSink | None = None
    events: LoopEventSink | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    tags: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    """Tags by resource ARN (set at creation and by AddTags/DeleteTags)."""

    def add_tags(self, arn: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            self.tags.setdefault(arn, {}).update({t["Key"]: t.get("Value", "") for t in tags})

    def arn(self, kind: str, name: str) -> str:
        """`arn:aws:sagemaker:<region>:<account>:<kind>/<name>` (SageMaker lowercases names)."""
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    def request_id(self) -> str:
        return str(uuid.uuid4())
