"""Flow definitions (a SageMaker API) and human loops (the A2I runtime API).

Human loops are seeded by tests (`seed_loop`, `complete_loop`, ...) or started through
StartHumanLoop. A loop that completes writes its `output.json` into the S3 stand-in at A2I's
key layout, at the moment it completes, so loops can finish out of creation order exactly as
they do on AWS. Unless the output was given as raw bytes, it also puts the reviewed image at
its `taskObject` (`images.image_bytes`: the first human answer's boxes are the image's truth,
class ids being indexes in the seeding `classes`), so Batch Transform can answer for it.

ListHumanLoops filters `CreationTimeAfter < CreationTime < CreationTimeBefore` (both strict),
sorts by creation time (Ascending by default) and pages with opaque key-based tokens.
An unknown `FlowDefinitionArn` answers ResourceNotFoundException.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from retraining_standins import errors
from retraining_standins.images import Truth, image_bytes, truth_of_a2i_output
from retraining_standins.model import SAGEMAKER, shared_members
from retraining_standins.paging import paginate, time_key
from retraining_standins.seed import (
    VOC_CLASSES,
    a2i_output_uri,
    make_rng,
    random_a2i_output,
    random_loop_name,
)
from retraining_standins.state import EmulatorState

LOOP_STATUSES = ("InProgress", "Completed", "Failed", "Stopped", "Stopping")
# With TaskCount 2-3: the chance that a worker misses, relabels or adds a box (each).
WORKER_DISAGREEMENT = 0.05
A2I_NOT_FOUND = "ResourceNotFoundException"


@dataclass
class FlowDefinition:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime
    status: str = "Active"

    @property
    def output_path(self) -> str:
        return str(self.request["OutputConfig"]["S3OutputPath"])

    @property
    def task_count(self) -> int:
        """HumanLoopConfig.TaskCount: how many workers answer each loop (1 by default)."""
        config = self.request.get("HumanLoopConfig") or {}
        return int(config.get("TaskCount", 1))

    def describe(self) -> dict[str, Any]:
        passthrough = shared_members(
            SAGEMAKER, ("CreateFlowDefinition", "input"), ("DescribeFlowDefinition", "output")
        )
        out = {k: v for k, v in self.request.items() if k in passthrough}
        out.update(
            FlowDefinitionArn=self.arn,
            FlowDefinitionName=self.name,
            FlowDefinitionStatus=self.status,
            CreationTime=self.created,
        )
        return out


@dataclass
class HumanLoop:
    name: str
    arn: str
    flow: FlowDefinition
    created: datetime
    status: str = "InProgress"
    input_content: str = "{}"
    failure_reason: str | None = None
    failure_code: str | None = None
    output_uri: str | None = None
    completed_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "HumanLoopName": self.name,
            "HumanLoopStatus": self.status,
            "CreationTime": self.created,
            "FlowDefinitionArn": self.flow.arn,
        }
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CreationTime": self.created,
            "HumanLoopStatus": self.status,
            "HumanLoopName": self.name,
            "HumanLoopArn": self.arn,
            "FlowDefinitionArn": self.flow.arn,
        }
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if self.failure_code:
            out["FailureCode"] = self.failure_code
        if self.status == "Completed" and self.output_uri:
            out["HumanLoopOutput"] = {"OutputS3Uri": self.output_uri}
        return out


def _millis(when: datetime) -> datetime:
    """A2I reports times to the millisecond; keep creation times exactly representable."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


class HumanLoopStore:
    def __init__(self, state: EmulatorState, seed: int = 0) -> None:
        self.state = state
        self.flows: dict[str, FlowDefinition] = {}
        self.loops: dict[str, HumanLoop] = {}
        self.rng = make_rng(seed)

    def reset(self, seed: int = 0) -> None:
        self.flows.clear()
        self.loops.clear()
        self.rng = make_rng(seed)

    def arns(self) -> set[str]:
        return {f.arn for f in self.flows.values()}

    # -- lookups ---------------------------------------------------------------------------
    def flow_by_arn(self, arn: str) -> FlowDefinition | None:
        for flow in self.flows.values():
            if flow.arn == arn:
                return flow
        return None

    def flow(self, name_or_arn: str) -> FlowDefinition:
        flow = self.flows.get(name_or_arn) or self.flow_by_arn(name_or_arn)
        if flow is None:
            raise KeyError(f"no flow definition {name_or_arn!r}")
        return flow

    def loop(self, name: str) -> HumanLoop:
        loop = self.loops.get(name)
        if loop is None:
            raise errors.resource_not_found(
                f"Human loop {name} does not exist.", code=A2I_NOT_FOUND
            )
        return loop

    # -- SageMaker: flow definitions -------------------------------------------------------
    def create_flow_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["FlowDefinitionName"]
        if name in self.flows:
            raise errors.resource_in_use(f"Flow definition {name} already exists.")
        output_path = params["OutputConfig"]["S3OutputPath"]
        if not str(output_path).startswith("s3://"):
            raise errors.validation("OutputConfig.S3OutputPath must be an s3:// URI.")
        flow = FlowDefinition(
            name=name,
            arn=self.state.arn("flow-definition", name),
            request=dict(params),
            created=_millis(self.state.clock.now()),
        )
        self.flows[name] = flow
        self.state.add_tags(flow.arn, params.get("Tags"))
        return {"FlowDefinitionArn": flow.arn}

    def describe_flow_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        flow = self.flows.get(params["FlowDefinitionName"])
        if flow is None:
            raise errors.resource_not_found(
                f"Flow definition {params['FlowDefinitionName']} does not exist."
            )
        return flow.describe()

    def delete_flow_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        flow = self.flows.pop(params["FlowDefinitionName"], None)
        if flow is None:
            raise errors.resource_not_found(
                f"Flow definition {params['FlowDefinitionName']} does not exist."
            )
        self.state.tags.pop(flow.arn, None)
        return {}

    # -- A2I runtime -----------------------------------------------------------------------
    def start_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HumanLoopName"]
        flow = self.flow_by_arn(params["FlowDefinitionArn"])
        if flow is None:
            raise errors.validation(
                f"Flow definition {params['FlowDefinitionArn']} does not exist."
            )
        if name in self.loops:
            raise errors.conflict(f"Human loop {name} already exists.")
        content = params["HumanLoopInput"]["InputContent"]
        try:
            json.loads(content)
        except ValueError as exc:
            raise errors.validation("HumanLoopInput.InputContent must be valid JSON.") from exc
        loop = HumanLoop(
            name=name,
            arn=self.state.arn("human-loop", name),
            flow=flow,
            created=_millis(self.state.clock.now()),
            input_content=content,
        )
        self.loops[name] = loop
        return {"HumanLoopArn": loop.arn}

    def describe_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.loop(params["HumanLoopName"]).describe()

    def stop_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = self.loop(params["HumanLoopName"])
        if loop.status != "InProgress":
            raise errors.validation(
                f"Human loop {loop.name} is {loop.status}; only InProgress loops can be stopped."
            )
        loop.status = "Stopped"
        self._ended(loop)
        return {}

    def delete_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = self.loop(params["HumanLoopName"])
        if loop.status in ("InProgress", "Stopping"):
            raise errors.validation(
                f"Human loop {loop.name} is {loop.status}; stop it before deleting it."
            )
        del self.loops[loop.name]
        return {}

    def list_human_loops(self, params: dict[str, Any]) -> dict[str, Any]:
        flow = self.flow_by_arn(params["FlowDefinitionArn"])
        if flow is None:
            raise errors.resource_not_found(
                f"Flow definition {params['FlowDefinitionArn']} does not exist.", code=A2I_NOT_FOUND
            )
        loops = [loop for loop in self.loops.values() if loop.flow is flow]
        after, before = params.get("CreationTimeAfter"), params.get("CreationTimeBefore")
        if after is not None:
            loops = [loop for loop in loops if loop.created > after]
        if before is not None:
            loops = [loop for loop in loops if loop.created < before]
        sort_order = params.get("SortOrder", "Ascending")
        page, token = paginate(
            loops,
            lambda loop: time_key(loop.created, loop.name),
            descending=sort_order == "Descending",
            max_results=params.get("MaxResults", 100),
            next_token=params.get("NextToken"),
            scope=f"ListHumanLoops/{flow.arn}/{sort_order}",
        )
        result: dict[str, Any] = {"HumanLoopSummaries": [loop.summary() for loop in page]}
        if token:
            result["NextToken"] = token
        return result

    # -- seeding (tests, the demo) ---------------------------------------------------------
    def seed_flow_definition(
        self,
        name: str,
        s3_output_path: str,
        *,
        role_arn: str | None = None,
        created: datetime | None = None,
        task_count: int = 1,
    ) -> FlowDefinition:
        role = role_arn or f"arn:aws:iam::{self.state.account_id}:role/a2i-emulated"
        self.create_flow_definition(
            {
                "FlowDefinitionName": name,
                "OutputConfig": {"S3OutputPath": s3_output_path},
                "RoleArn": role,
                "HumanLoopConfig": {
                    "WorkteamArn": self.state.arn("workteam", "private-crowd/emulated"),
                    "HumanTaskUiArn": self.state.arn("human-task-ui", f"{name}-ui"),
                    "TaskTitle": "Draw bounding boxes around the objects",
                    "TaskDescription": "Label every object of the listed classes",
                    "TaskCount": task_count,
                },
            }
        )
        flow = self.flows[name]
        if created is not None:
            flow.created = _millis(created)
        return flow

    def seed_loop(
        self,
        flow: str | FlowDefinition,
        name: str | None = None,
        *,
        status: str = "Completed",
        created: datetime | None = None,
        completed_at: datetime | None = None,
        output: Mapping[str, Any] | bytes | str | None = None,
        task_object: str | None = None,
        classes: Sequence[str] = VOC_CLASSES,
        workers: int | None = None,
        failure_reason: str | None = None,
    ) -> HumanLoop:
        """Create a loop directly (no API call). Completed loops get an output.json."""
        if status not in ("InProgress", "Completed", "Failed", "Stopped"):
            raise ValueError(f"unsupported seeded loop status {status!r}")
        flow_def = flow if isinstance(flow, FlowDefinition) else self.flow(flow)
        name = name or random_loop_name(self.rng)
        if name in self.loops:
            raise ValueError(f"human loop {name!r} already exists")
        now = self.state.clock.now()
        created = _millis(created or now)
        bucket_path = flow_def.output_path.rstrip("/")
        task = task_object or f"{bucket_path}/input-images/{name}.jpg"
        loop = HumanLoop(
            name=name,
            arn=self.state.arn("human-loop", name),
            flow=flow_def,
            created=created,
            input_content=json.dumps({"taskObject": task}),
        )
        self.loops[name] = loop
        if status == "Completed":
            at = completed_at or max(created, min(created + timedelta(minutes=5), now))
            self._complete(loop, output, at, classes=classes, workers=workers, task=task)
        elif status == "Failed":
            loop.status = "Failed"
            loop.failure_reason = failure_reason or "The human loop failed (emulated)."
            loop.failure_code = "EmulatedFailure"
            self._ended(loop)
        elif status == "Stopped":
            loop.status = "Stopped"
            self._ended(loop)
        return loop

    def complete_loop(
        self,
        name: str,
        output: Mapping[str, Any] | bytes | str | None = None,
        *,
        at: datetime | None = None,
        classes: Sequence[str] = VOC_CLASSES,
        workers: int | None = None,
    ) -> str:
        """Complete an InProgress loop now (or `at`), writing its output.json; returns its URI."""
        loop = self.loop(name)
        if loop.status != "InProgress":
            raise ValueError(f"human loop {name!r} is {loop.status}, not InProgress")
        task = _task_object(loop)
        return self._complete(
            loop, output, at or self.state.clock.now(), classes=classes, workers=workers, task=task
        )

    def fail_loop(self, name: str, reason: str = "The human loop failed (emulated).") -> None:
        loop = self.loop(name)
        loop.status = "Failed"
        loop.failure_reason = reason
        loop.failure_code = "EmulatedFailure"
        self._ended(loop)

    def _ended(self, loop: HumanLoop) -> None:
        """A2I publishes a status-change event for every loop that ends (EventBridge)."""
        if self.state.events is not None:
            self.state.events.loop_ended(loop)

    def _put_image(self, task: str, truth: Truth | None) -> None:
        """The reviewed image itself, at its task object, carrying the first answer's boxes
        (the truth a Batch Transform model sees). An image A2I could not have read (no
        bucket, not s3://) is skipped."""
        store = self.state.store
        if truth is None or store is None:
            return
        try:
            store.put(task, image_bytes(truth.width, truth.height, truth.boxes), "image/jpeg")
        except (ClientError, ValueError):
            return

    def _complete(
        self,
        loop: HumanLoop,
        output: Mapping[str, Any] | bytes | str | None,
        at: datetime,
        *,
        classes: Sequence[str],
        workers: int | None,
        task: str,
    ) -> str:
        store = self.state.store
        if store is None:
            raise RuntimeError("completing a human loop needs an S3 store for its output.json")
        uri = a2i_output_uri(loop.flow.output_path, loop.flow.name, loop.name, loop.created)
        # Without an explicit worker count, the flow's TaskCount workers answer; several of
        # them review the same objects (jitter, occasional disagreement), as real teams do.
        count = workers if workers is not None else loop.flow.task_count
        disagreement = WORKER_DISAGREEMENT if workers is None and count > 1 else None
        document: Any = output
        if output is None:
            document = random_a2i_output(
                flow_definition_arn=loop.flow.arn,
                human_loop_name=loop.name,
                task_object=task,
                classes=classes,
                rng=random.Random(self.rng.getrandbits(64)),
                submitted_at=at,
                workers=count,
                disagreement=disagreement,
            )
            body = json.dumps(document).encode()
        elif isinstance(output, bytes | str):  # raw, often malformed on purpose: no image
            body = output if isinstance(output, bytes) else output.encode()
            document = None
        else:
            body = json.dumps(output).encode()
        store.put(uri, body, "application/json")
        self._put_image(task, truth_of_a2i_output(document, classes))
        loop.status = "Completed"
        loop.output_uri = uri
        loop.completed_at = at
        self._ended(loop)
        return uri


def _task_object(loop: HumanLoop) -> str:
    try:
        content = json.loads(loop.input_content)
    except ValueError:
        content = {}
    task = content.get("taskObject") if isinstance(content, dict) else None
    if task:
        return str(task)
    return f"{loop.flow.output_path.rstrip('/')}/input-images/{loop.name}.jpg"
