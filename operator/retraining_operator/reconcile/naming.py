"""Deterministic AWS resource names per policy and run.

A crash between a Create* call and recording it in status must find the same
resource again, so every name is a pure function of (policy namespace/name/uid,
run id, kind). Names stay valid for SageMaker (1-63 chars of
`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`) and unique across policies, because a hash
of the policy UID is part of every name even when the readable part is cut.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_NAME = 63
MAX_TUNING_NAME = 32


@dataclass(frozen=True)
class PolicyRef:
    """Who a SageMaker resource belongs to: the policy's namespace, name and UID.

    The UID makes names unique across policies (a hash of it is part of every name);
    a policy deleted and re-created under the same name gets a new UID and new names.
    """

    namespace: str
    name: str
    uid: str

    @classmethod
    def without_uid(cls, namespace: str, name: str) -> PolicyRef:
        """For a policy read from a file (the `plan` CLI): a stable stand-in UID.

        `plan-<sha256(namespace/name)[:16]>`: the same file always plans the same names,
        but they differ from the names the operator makes for the live object (real UID).
        """
        return cls(
            namespace=namespace, name=name, uid=f"plan-{_digest(namespace, name, length=16)}"
        )

    def tags(self, run_id: str) -> list[dict[str, str]]:
        return ownership_tags(
            namespace=self.namespace, policy_name=self.name, policy_uid=self.uid, run_id=run_id
        )

    def training_job_name(self, run_id: str) -> str:
        return training_job_name(policy_name=self.name, policy_uid=self.uid, run_id=run_id)

    def tuning_job_name(self, run_id: str) -> str:
        return tuning_job_name(policy_name=self.name, policy_uid=self.uid, run_id=run_id)


def run_id_for(started_at: datetime) -> str:
    """Run ids sort by time and fit in names: `r20261124-220500`."""
    return started_at.astimezone(UTC).strftime("r%Y%m%d-%H%M%S")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")
    return slug or "x"


def _digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def resource_name(
    kind: str, *, policy_name: str, policy_uid: str, run_id: str, max_len: int = MAX_NAME
) -> str:
    """`<policy>-<run>-<kind>-<hash>`, readable part cut to fit, hash always kept.

    kind is a short tag ("tj" training job, "ht" tuning job, "m" model, "ec" config).
    """
    digest = _digest(policy_uid, run_id, kind)
    run = _slug(run_id).replace("r", "", 1) if max_len < MAX_NAME else _slug(run_id)
    tail = f"-{run}-{kind}-{digest}"
    room = max_len - len(tail)
    if room < 1:
        tail = f"-{kind}-{digest}"
        room = max_len - len(tail)
    head = _slug(policy_name)[:room].rstrip("-") or "p"
    return f"{head}{tail}"


def training_job_name(*, policy_name: str, policy_uid: str, run_id: str) -> str:
    return resource_name("tj", policy_name=policy_name, policy_uid=policy_uid, run_id=run_id)


def tuning_job_name(*, policy_name: str, policy_uid: str, run_id: str) -> str:
    return resource_name(
        "ht",
        policy_name=policy_name,
        policy_uid=policy_uid,
        run_id=run_id,
        max_len=MAX_TUNING_NAME,
    )


def model_name(*, policy_name: str, policy_uid: str, run_id: str) -> str:
    return resource_name("m", policy_name=policy_name, policy_uid=policy_uid, run_id=run_id)


def endpoint_config_name(*, policy_name: str, policy_uid: str, run_id: str) -> str:
    return resource_name("ec", policy_name=policy_name, policy_uid=policy_uid, run_id=run_id)


# Tags that mark a SageMaker resource as made by this operator for one policy and run.
TAG_MANAGED_BY = "retraining.hitl.dev/managed-by"
TAG_NAMESPACE = "retraining.hitl.dev/namespace"
TAG_POLICY = "retraining.hitl.dev/policy"
TAG_POLICY_UID = "retraining.hitl.dev/policy-uid"
TAG_RUN_ID = "retraining.hitl.dev/run-id"
MANAGED_BY_VALUE = "a2i-retraining-operator"


def ownership_tags(
    *, namespace: str, policy_name: str, policy_uid: str, run_id: str
) -> list[dict[str, str]]:
    """SageMaker tags (Key/Value) linking a resource to its policy and run."""
    return [
        {"Key": TAG_MANAGED_BY, "Value": MANAGED_BY_VALUE},
        {"Key": TAG_NAMESPACE, "Value": namespace},
        {"Key": TAG_POLICY, "Value": policy_name},
        {"Key": TAG_POLICY_UID, "Value": policy_uid},
        {"Key": TAG_RUN_ID, "Value": run_id},
    ]
